"""Optuna (>= 4) behind Hydra's override syntax: the search space, the study, resuming.

Why not hydra-optuna-sweeper: its last release (1.3.0) pins optuna < 3, and optuna 2.10 cannot use
SQLite storage next to SQLAlchemy 2, which MLflow needs. The sweeper of this project
(pipeline/sweep/plugins) is the same idea on Optuna's ask/tell API; this module is its logic.

Search space, as Hydra overrides (command line or ``hydra.sweeper.params``):
  ``choice(a,b)`` or ``a,b``       -> categorical
  ``range(1,5)`` / ``range(0.1,0.5,0.1)`` -> integers / stepped floats (stop excluded, as in Hydra)
  ``interval(1e-4,1e-2)``          -> uniform float
  ``tag(log, interval(...))``      -> log-uniform; ``tag(int, interval(1,8))``: integers
Any other override is fixed for every trial.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

INTERRUPTED = "interrupted"  # user attr of a trial that its sweep did not finish (killed, Ctrl-C)
RETRY_OF = "retry_of"  # user attr of a trial queued again with an interrupted trial's parameters
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (choice, range or interval)."""
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep):
        choices = list(value.list)
        if any(isinstance(v, (list, dict)) for v in choices):
            raise ValueError(f"{key}: Optuna's choices must be numbers, strings or booleans, not {choices}")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        log = "log" in value.tags
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(start, stop - step, step=step, log=log)
        count = int(round((stop - start) / step))
        return FloatDistribution(start, start + (count - 1) * step, step=step, log=log)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{key}: {override.input_line!r} is not a sweep (use choice, range or interval)")


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution]
    fixed: list[str]  # overrides given to every trial as written

    @classmethod
    def parse(cls, arguments: list[str], params: dict | None = None) -> SearchSpace:
        """``params`` (from the config) first, then the command line's arguments, which win."""
        lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
        distributions, fixed = {}, {}
        for override in OverridesParser.create().parse_overrides(lines):
            key = override.get_key_element()
            distributions.pop(key, None)
            fixed.pop(key, None)
            if override.is_sweep_override():
                distributions[key] = distribution(override)
            else:
                fixed[key] = override.input_line
        if not distributions:
            raise ValueError("the Optuna sweep has no search space: give hydra.sweeper.params or overrides "
                             "like 'train.classifier.lr=tag(log, interval(1e-4, 1e-2))'")
        return cls(distributions, list(fixed.values()))

    def overrides(self, params: dict) -> list[str]:
        """The Hydra overrides of one trial: its sampled parameters, then the fixed ones."""
        return [f"{key}={format_value(value)}" for key, value in params.items()] + self.fixed


def format_value(value) -> str:
    if isinstance(value, str):
        return value if value and all(c.isalnum() or c in "_-./@" for c in value) else repr(value)
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else repr(value)


def open_study(name: str, storage: str | None, direction: str, sampler=None, pruner=None) -> optuna.Study:
    """The study ``name`` in ``storage`` (an SQLAlchemy URL; None: in memory), created on first use."""
    return optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=sampler,
                               pruner=pruner, load_if_exists=True)


def recover_interrupted(study: optuna.Study, retry: bool) -> list[int]:
    """Trials left RUNNING by a sweep that was killed are marked FAIL (interrupted); with ``retry``
    the parameters of every interrupted trial are queued once more. Returns the numbers recovered.

    Assumes one sweep process per study at a time (as `sweep` runs it): a RUNNING trial found at
    start-up belongs to a dead process."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    mark_interrupted(study, [optuna.trial.Trial(study, t._trial_id) for t in running])
    if retry:
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        for trial in trials:
            if trial.user_attrs.get(INTERRUPTED) and trial.number not in retried:
                study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number}, skip_if_exists=False)
    return [t.number for t in running]


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards n_trials: finished ones, except the interrupted (they are retried)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED) if not t.user_attrs.get(INTERRUPTED))


def mark_interrupted(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Record ``trials`` (still running) as failed because their sweep stopped."""
    for trial in trials:
        trial.set_user_attr(INTERRUPTED, True)
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
