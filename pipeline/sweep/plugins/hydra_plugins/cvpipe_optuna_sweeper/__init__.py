"""Hydra sweeper plugin: Optuna >= 4 with persistent storage, resuming, pruning, failed trials.

Hydra loads sweepers only from the ``hydra_plugins`` namespace package; `sweep`
(pipeline/sweep/app.py) puts this folder's parent on that namespace. Selected with
``hydra/sweeper=optuna`` (conf/hydra/sweeper/optuna.yaml). The logic is pipeline.sweep.optuna_search.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from pipeline.sweep.optuna_search import SearchSpace, counted_trials, mark_interrupted, open_study, recover_interrupted

log = logging.getLogger(__name__)


def ensure_sqlite_folder(storage: str | None) -> None:
    if storage and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, storage: str | None, direction: str = "maximize", n_trials: int = 10,
                 n_jobs: int = 1, sampler: Any = None, pruner: Any = None, params: dict | None = None,
                 enqueue: list | None = None, retry_interrupted: bool = True) -> None:
        if not storage:
            raise ValueError("hydra.sweeper.storage: the Optuna sweeper needs a database (e.g. "
                             "sqlite:///sweeps/optuna.db) so that trials can prune and a sweep can resume")
        self.study_name, self.storage, self.direction = study_name, str(storage), direction
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.sampler, self.pruner = sampler, pruner
        self.params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
        self.enqueue = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p
                        for p in (enqueue or [])]
        self.retry_interrupted = retry_interrupted

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> optuna.Study:
        space = SearchSpace.parse(arguments, self.params)
        ensure_sqlite_folder(self.storage)
        study = open_study(self.study_name, self.storage, self.direction, self.sampler, self.pruner)
        recovered = recover_interrupted(study, self.retry_interrupted)
        if recovered:
            log.warning(f"study {self.study_name}: trials {recovered} were interrupted; marked failed"
                        + (" and queued again" if self.retry_interrupted else ""))
        for params in self.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info(f"Optuna study {self.study_name} ({self.storage}): {counted_trials(study)} of {self.n_trials} "
                 f"trials done; search space {sorted(space.distributions)}")
        while (remaining := self.n_trials - counted_trials(study)) > 0:
            batch = [study.ask(space.distributions) for _ in range(min(self.n_jobs, remaining))]
            jobs = [space.overrides(t.params) + self.identity(t) for t in batch]
            try:
                returns = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            except BaseException:
                mark_interrupted(study, batch)
                raise
            for trial, ret in zip(batch, returns):
                self.tell(study, trial, ret)
        self.write_results(study, sweep_dir)
        return study

    def identity(self, trial: optuna.Trial) -> list[str]:
        """Overrides that let the trial find itself in the study (for pruning from inside Lightning)."""
        return [f"++sweep.optuna.study={self.study_name}", f"++sweep.optuna.storage='{self.storage}'",
                f"++sweep.optuna.trial_id={trial._trial_id}", f"++sweep.optuna.number={trial.number}"]

    @staticmethod
    def tell(study: optuna.Study, trial: optuna.Trial, ret) -> None:
        try:
            value = ret.return_value
        except optuna.TrialPruned as pruned:
            value = pruned
        except Exception as error:  # the job raised: a failed trial, the sweep goes on
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning(f"trial {trial.number} failed: {type(error).__name__}: {error}")
            return
        if isinstance(value, optuna.TrialPruned):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log.info(f"trial {trial.number} pruned")
        elif value is None or not math.isfinite(float(value)):  # the trial recorded its own failure
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning(f"trial {trial.number} failed (objective {value})")
        else:
            study.tell(trial, float(value))

    def write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        results = {"study": self.study_name, "storage": self.storage, "direction": self.direction,
                   "trials": len(study.trials), "complete": len(complete)}
        if complete:
            results.update(best_trial=study.best_trial.number, best_value=study.best_value,
                           best_params=study.best_params)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info(f"Optuna study {self.study_name}: {results}")
