"""`sweep`: the Hydra application of sweeps (config conf/sweeps.yaml; task pipeline.sweep.trial).

    python -m pipeline.sweep -m sweep=classifier_grid
    python -m pipeline.sweep -m sweep=classifier_optuna data=synthetic_tiny hydra.sweeper.n_trials=4
    python -m pipeline.sweep -m sweep=classifier 'train.classifier.lr=0.001,0.003'   # ad hoc grid
"""

from __future__ import annotations

import sys
from pathlib import Path

import pipeline  # noqa: F401  (offline environment defaults)

PLUGINS = Path(__file__).parent / "plugins"  # holds hydra_plugins/cvpipe_optuna_sweeper


def add_plugins() -> None:
    """Put this project's Hydra plugins on the ``hydra_plugins`` namespace package, next to any
    installed ones (Hydra only loads sweepers from that namespace)."""
    if str(PLUGINS) not in sys.path:
        sys.path.append(str(PLUGINS))


def entry() -> None:
    from pipeline.allocator import keep_freed_memory
    from pipeline.collector import collect_less_often

    keep_freed_memory()  # the trials train in this process
    collect_less_often()
    add_plugins()
    import hydra

    from pipeline.config import CONF_DIR
    from pipeline.sweep.parent import end_open_parents
    from pipeline.sweep.trial import run_trial

    main = hydra.main(config_path=str(CONF_DIR), config_name="sweeps", version_base="1.3")(run_trial)
    try:
        main()
    except KeyboardInterrupt:
        end_open_parents("KILLED")
        raise
    except SystemExit as stop:
        end_open_parents("FINISHED" if stop.code in (0, None) else "FAILED")
        raise
    except BaseException:
        end_open_parents("FAILED")
        raise
    end_open_parents("FAILED")  # a parent still open here: the sweep ended without its summary


if __name__ == "__main__":
    entry()
