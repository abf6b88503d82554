"""Hyperparameter sweeps: Hydra multirun over any config key, each trial trained and evaluated on
its composed config, logged to MLflow as children of one parent run per sweep.

  python -m pipeline.sweep -m sweep=classifier_grid           # Hydra's basic sweeper (grid)
  python -m pipeline.sweep -m sweep=detector_optuna           # Optuna >= 4 (pipeline/sweep/plugins)
"""
