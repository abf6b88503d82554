"""The Optuna search space from Hydra's override syntax, and resuming an interrupted study."""

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from pipeline.sweep.optuna_search import (
    INTERRUPTED,
    RETRY_OF,
    SearchSpace,
    counted_trials,
    open_study,
    recover_interrupted,
)
from pipeline.sweep.trial import trial_overrides


def test_overrides_become_distributions_and_fixed_values():
    space = SearchSpace.parse(["train.classifier.lr=tag(log, interval(1e-4, 1e-2))", "model/classifier=lite0",
                               "train.classifier.epochs=range(2, 8, 2)"],
                              {"anchors@model.detector.anchors": "choice(ssd, fastai)", "x.gamma": "interval(0.5, 3)",
                               "x.k": "tag(int, interval(1, 4))", "x.f": "range(0.1, 0.5, 0.1)",
                               "model/classifier": "a,b"})
    d = space.distributions
    assert d["train.classifier.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert d["anchors@model.detector.anchors"] == CategoricalDistribution(["ssd", "fastai"])
    assert d["x.gamma"] == FloatDistribution(0.5, 3.0) and d["x.k"] == IntDistribution(1, 4)
    assert d["train.classifier.epochs"] == IntDistribution(2, 6, step=2)  # Hydra's range excludes the stop
    assert math.isclose(d["x.f"].high, 0.4) and d["x.f"].step == 0.1
    assert "model/classifier" not in d and space.fixed == ["model/classifier=lite0"]  # the command line wins
    overrides = space.overrides({"train.classifier.lr": 0.001, "anchors@model.detector.anchors": "fastai",
                                 "flag": True, "name": "has space"})
    assert overrides == ["train.classifier.lr=0.001", "anchors@model.detector.anchors=fastai", "flag=true",
                         "name='has space'", "model/classifier=lite0"]


def test_a_sweep_without_search_space_is_refused():
    with pytest.raises(ValueError, match="no search space"):
        SearchSpace.parse(["train.classifier.lr=0.001"])


def test_trial_overrides_leave_out_the_sweeps_own_settings():
    given = ["train.classifier.lr=0.01", "sweep=classifier_optuna", "sweep.data_cache=/x", "hydra.sweeper.n_trials=4",
             "++sweep.optuna.trial_id=3", "model/classifier=lite0"]
    assert trial_overrides(given) == ["train.classifier.lr=0.01", "model/classifier=lite0"]


def test_interrupted_trials_are_failed_then_retried_and_not_counted(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study("s", storage, "maximize")
    space = {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    for value in (0.5, 0.7):
        study.tell(study.ask(space), value)
    killed = study.ask(space)  # left RUNNING, as by a killed process
    again = open_study("s", storage, "maximize")
    assert recover_interrupted(again, retry=True) == [killed.number]
    trials = again.get_trials()
    assert trials[killed.number].state == TrialState.FAIL and trials[killed.number].user_attrs[INTERRUPTED]
    assert counted_trials(again) == 2
    retry = again.ask(space)  # the queued retry comes first, with the same parameters
    assert retry.params == killed.params and retry.user_attrs[RETRY_OF] == killed.number
    assert retry.number == killed.number + 1
    again.tell(retry, 0.9)
    assert recover_interrupted(open_study("s", storage, "maximize"), retry=True) == []
    assert len(optuna.load_study(study_name="s", storage=storage).get_trials(states=(TrialState.WAITING,))) == 0


@pytest.mark.parametrize("preset", ["classifier", "detector", "classifier_grid", "classifier_optuna",
                                    "detector_optuna"])
def test_sweep_presets_compose_and_sweep_keys_that_exist(preset):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pipeline.config import CONF_DIR
    from pipeline.sweep.app import add_plugins

    add_plugins()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("sweeps", overrides=[f"sweep={preset}"], return_hydra_config=True)
    assert cfg.sweep.task in ("classifier", "detector") and cfg.sweep.name == preset
    assert cfg.hydra.callbacks.mlflow_parent._target_ == "pipeline.sweep.parent.MlflowSweepCallback"
    if preset.endswith("_optuna"):
        assert cfg.hydra.sweeper._target_ == "hydra_plugins.cvpipe_optuna_sweeper.OptunaSweeper"
        assert cfg.hydra.sweeper.study_name == preset and cfg.hydra.sweeper.storage.startswith("sqlite:///")
        SearchSpace.parse([], OmegaConf.to_container(cfg.hydra.sweeper.params))  # a valid search space
        assert cfg.hydra.sweep.dir == f"sweeps/{preset}/{preset}"  # one folder per study: resumable
    else:
        assert OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"].endswith("${now:%Y-%m-%d_%H-%M-%S}")
    for key in (cfg.hydra.sweeper.get("params") or {}):
        group, _, package = key.partition("@")
        if "/" in group or package:  # a config group: its options are files in conf/
            assert (CONF_DIR / group.split("/")[0]).is_dir(), key
        else:
            assert OmegaConf.select(cfg, key) is not None, key
