"""conf/ and params.yaml are one source of truth, checked against the schema before any work."""

import inspect
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump
from omegaconf import OmegaConf

from pipeline.config import CONF_DIR, PROJECT_ROOT, compose, load_params
from pipeline.data.sources import get_source
from pipeline.schema import DATA_FORMATS, ConfigError
from pipeline.tasks import STEP_PARAMS, TASKS


def test_params_yaml_is_exactly_the_composed_conf(tmp_path):
    """Fails when conf/ and params.yaml drift; fix with `python stages/sync_params.py`."""
    composed = tmp_path / "params.yaml"
    compose_and_dump(composed, str(CONF_DIR), None, "config", str(PROJECT_ROOT), [])
    committed = (PROJECT_ROOT / "params.yaml").read_text()
    assert yaml.safe_load(committed) == yaml.safe_load(composed.read_text()), (
        "params.yaml disagrees with conf/: run `python stages/sync_params.py`")
    assert committed == composed.read_text()
    load_params(PROJECT_ROOT / "params.yaml")  # and it passes the schema



def test_a_composition_is_reused_as_a_copy_until_a_conf_file_changes(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    first = compose(["data=synthetic_tiny"], conf)
    lr = first.train.classifier.lr
    first.train.classifier.lr = lr * 10  # a caller's change stays its own
    assert compose(["data=synthetic_tiny"], conf).train.classifier.lr == lr
    settings = conf / "train/classifier/default.yaml"
    text = settings.read_text()
    assert f"\nlr: {lr}\n" in text
    settings.write_text(text.replace(f"\nlr: {lr}\n", f"\nlr: {lr}5\n"))  # an edit under conf/ composes anew
    assert compose(["data=synthetic_tiny"], conf).train.classifier.lr == float(f"{lr}5")
    assert compose(["data=synthetic_tiny", "train.classifier.lr=0.5"], conf).train.classifier.lr == 0.5

@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml") if p.stem[0] != "_"))
def test_every_data_option_composes_to_a_valid_config_with_models_that_fit(option):
    cfg = compose([f"data={option}"])  # validated: schema and models
    assert cfg.data.format in DATA_FORMATS
    assert cfg.data.root, "dvc.yaml depends on ${data.root}: every data option sets it"
    assert abs(sum(cfg.data.split[name] for name in ("train", "val", "test")) - 1) < 1e-9
    kind = get_source(cfg.data.format).TASK
    assert cfg.data.models and all(kind in TASKS[m].data for m in cfg.data.models)


def test_detection_presets_train_the_detector_alone_and_the_built_in_data_every_model():
    detection = [p.stem for p in (CONF_DIR / "data").glob("*.yaml")
                 if p.stem[0] != "_" and get_source(compose([f"data={p.stem}"]).data.format).TASK == "detection"]
    assert {"voc", "coco", "kitti", "yolo", "csv", "raccoon", "bccd"} <= set(detection)
    for option in detection:
        expected = ["detector", "fcn", "classifier", "multilabel"] if option in ("synthetic", "synthetic_tiny") else [
            "detector"]
        assert list(compose([f"data={option}"]).data.models) == expected, option


def test_override_syntax_reaches_nested_keys():
    cfg = compose(["data=raccoon", "data.root=/data/raccoon", "data.boxes.clip_tolerance=5"])
    assert (cfg.data.format, cfg.data.root, cfg.data.boxes.clip_tolerance) == ("voc", "/data/raccoon", 5)


def per_model_stages() -> dict:
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    return {name: stage for name, stage in dvc["stages"].items() if "foreach" in stage}


def test_each_per_model_stage_lists_exactly_the_params_the_registry_says_it_reads():
    """dvc.yaml's `params` of train/evaluate/export are STEP_PARAMS: a key read but not listed would
    leave a stale model; a key listed but not read (logger, the progress bar) would re-train for nothing."""
    families = per_model_stages()
    assert set(families) == set(STEP_PARAMS)
    for name, stage in families.items():
        assert stage["foreach"] == "${data.models}", name
        listed = tuple(p.replace("${item}", "{task}") for p in stage["do"]["params"])
        assert listed == STEP_PARAMS[name], f"dvc.yaml stage {name} lists {listed}, the registry {STEP_PARAMS[name]}"
        assert not any(p.startswith("logger") for p in listed)


def test_every_param_a_stage_names_exists_for_every_task():
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        keys = stage["do"]["params"] if "do" in stage else stage["params"]
        for task in TASKS if "do" in stage else [None]:
            for key in keys:
                node = params
                for part in key.replace("${item}", task or "").split("."):
                    assert part in node, f"stage {name}[{task}] names param {key} missing from params.yaml"
                    node = node[part]


def test_no_absolute_or_home_paths_in_params():
    text = (PROJECT_ROOT / "params.yaml").read_text()
    assert str(Path.home()) not in text and "/root/" not in text and "/home/" not in text


# --- mistakes are refused before any work, in one line naming the key, the file and the fix ---------


def edited_params(tmp_path: Path, path: str, value, delete: bool = False) -> Path:
    cfg = OmegaConf.load(PROJECT_ROOT / "params.yaml")
    parent, _, leaf = path.rpartition(".")
    node = OmegaConf.select(cfg, parent)
    if delete:
        del node[leaf]
    else:
        node[leaf] = value
    target = tmp_path / "params.yaml"
    OmegaConf.save(cfg, target)
    return target


@pytest.mark.parametrize("path, value, expected", [
    ("train.classifier.epoch", 1, "unknown key 'train.classifier.epoch'; did you mean 'train.classifier.epochs'?"),
    ("train.classifier.epochs", "ten", "'train.classifier.epochs' expects an integer, got 'ten'"),
    ("export.register", "maybe", "'export.register' expects true or false, got 'maybe'"),
    ("trainer.acelerator", "gpu", "unknown key 'trainer.acelerator' (not an argument of lightning's Trainer); "
                                  "did you mean 'accelerator'?"),
    ("data.models", ["classifier", "detectr"],
     "data.models names 'detectr', which is not a task; did you mean 'detector'? choose from classifier, fcn, "
     "detector, multilabel"),
    ("train.detector.optimizer.name", "sdg", "'train.detector.optimizer.name' expects one of adamw, adam, sgd, "
                                             "got 'sdg'"),
    ("train.classifier.monitor", "val_map", "train.classifier.monitor: 'val_map' is not a metric the classifier logs "
                                            "every epoch; choose one of val_loss, val_acc, val_f1, or last"),
    ("train.detector.epochs", "atuo", "train.detector.epochs: 'atuo' is neither a positive integer nor auto"),
    ("augment.detector.input_size", [160], "augment.detector.input_size: [160] is neither [width, height] "
                                           "(positive integers) nor auto"),
    ("augment.classifier.input_size", "atuo", "augment.classifier.input_size: 'atuo' is neither [width, height] "
                                              "(positive integers) nor auto"),
])
def test_a_mistake_in_params_yaml_stops_the_first_stage_in_one_line(tmp_path, path, value, expected):
    params = edited_params(tmp_path, path, value)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "stages/prepare.py", "--params", str(params), "--out", str(tmp_path / "o"),
                           "--reports", str(tmp_path / "r"), "--metrics", str(tmp_path / "m.json")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip() == f"error: {params}: {expected}", done.stderr
    assert time.monotonic() - start < 30 and not (tmp_path / "o").exists()


def test_monitor_last_is_every_tasks_choice_and_stops_nothing_early():
    """`monitor: last` (best.ckpt: the last epoch's weights) is accepted for every task, and refused
    beside an early-stopping patience, which needs a metric to watch."""
    cfg = compose(["data=synthetic_tiny", *(f"train.{task}.monitor=last" for task in TASKS)])
    assert {cfg.train[task].monitor for task in TASKS} == {"last"}
    with pytest.raises(ValueError, match="train.detector.early_stopping_patience needs a metric to watch, and "
                                         "monitor is last"):
        compose(["data=synthetic_tiny", "train.detector.monitor=last", "train.detector.early_stopping_patience=3"])


def test_checking_params_yaml_imports_no_deep_learning_library():
    """The first stage checks params.yaml, and reports a mistake in it, before torch or Lightning
    (seconds of imports) are loaded."""
    probe = ("import sys; from pipeline.config import load_params; load_params('params.yaml'); "
             "print(sorted(m for m in ('torch', 'lightning', 'torchvision', 'mlflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_trainer_keys_allowed_are_the_arguments_of_lightnings_trainer():
    from lightning.pytorch import Trainer

    from pipeline.schema import trainer_arguments

    signature = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    assert "accelerator" in signature and trainer_arguments() == signature


def test_a_missing_key_in_params_yaml_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"params.yaml: missing key 'train.detector.lr'"):
        load_params(edited_params(tmp_path, "train.detector.lr", None, delete=True))


@pytest.fixture
def conf_copy(tmp_path) -> Path:
    shutil.copytree(CONF_DIR, tmp_path / "conf")
    return tmp_path / "conf"


def replace_line(path: Path, pattern: str, line: str) -> None:
    text = path.read_text()
    assert re.search(pattern, text, re.M), pattern
    path.write_text(re.sub(pattern, line, text, count=1, flags=re.M))


def test_a_typo_in_conf_names_the_conf_file_and_the_closest_key(conf_copy):
    replace_line(conf_copy / "train/detector/default.yaml", r"^freeze_epochs:", "freeze_epoch:")
    with pytest.raises(ConfigError) as error:
        compose(config_dir=conf_copy)
    message = str(error.value)
    assert message.startswith(f"{conf_copy / 'train/detector/default.yaml'}: unknown key 'train.detector.freeze_epoch'")
    assert message.endswith("did you mean 'train.detector.freeze_epochs'?")


def test_a_wrong_type_in_a_shared_conf_file_names_that_file(conf_copy):
    replace_line(conf_copy / "augment/detector/_base.yaml", r"^pad_fill:.*$", "pad_fill: grey")
    with pytest.raises(ConfigError, match=re.escape(f"{conf_copy / 'augment/detector/_base.yaml'}: "
                                                    "'augment.detector.pad_fill' expects an integer, got 'grey'")):
        compose(config_dir=conf_copy)


def test_a_key_removed_from_conf_is_missing_not_defaulted(conf_copy):
    replace_line(conf_copy / "evaluate/default.yaml", r"^  threshold:.*$", "")
    with pytest.raises(ConfigError, match="missing key 'evaluate.fcn.threshold'"):
        compose(config_dir=conf_copy)


@pytest.mark.parametrize("data, models, fits", [
    ("dolphins_seahorses", "[classifier,detector]", "[classifier]"),
    ("folders", "[fcn]", "[]"),
])
def test_models_the_data_cannot_train_are_refused_with_the_fix(data, models, fits):
    with pytest.raises(ValueError) as error:
        compose([f"data={data}", f"data.models={models}"])
    message = str(error.value)
    assert "needs detection data" in message and "is classification data" in message
    assert message.endswith(f"train only what fits with -S 'data.models={fits}'")


@pytest.mark.parametrize(("override", "message"), [
    ("train.classifier.epochs=-1", "train.classifier.epochs: -1 is not a number of epochs to train; give 1 or more"),
    ("train.multilabel.epochs=0", "train.multilabel.epochs: 0 is not a number of epochs to train; give 1 or more"),
    ("train.classifier.batch_size=0", "train.classifier.batch_size: 0 is not a batch; give 1 or more"),
    ("train.fcn.dense.batch_size=0", "train.fcn.dense.batch_size: 0 is not a batch; give 1 or more"),
    ("train.detector.freeze_epochs=-1", "train.detector.freeze_epochs: -1 is below 0"),
    ("train.detector.num_workers=-2", "train.detector.num_workers: -2 is not a count of loader processes"),
    ("train.classifier.image_cache_mb=-1", "train.classifier.image_cache_mb: -1 is below 0"),
    ("train.detector.postprocess.vote_iou=1.5",
     "train.detector.postprocess.vote_iou: 1.5 is neither an IoU in [0, 1) nor null (no voting)"),
    ("train.detector.postprocess.vote_power=-1", "train.detector.postprocess.vote_power: -1.0 is not a number >= 0"),
    ("train.detector.postprocess.flip=sometimes",
     "train.detector.postprocess.flip: 'sometimes' is not auto, true or false"),
    ("train.detector.postprocess.flip=1", "train.detector.postprocess.flip: 1 is not auto, true or false"),
])
def test_counts_that_cannot_train_are_refused_before_any_work_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose([override])
    compose(["train.fcn.dense.epochs=0", "train.classifier.num_workers=auto",  # allowed: no dense phase; auto
             "train.detector.postprocess.flip=false"])


def test_a_data_root_with_a_tilde_is_refused_with_the_full_path_to_give():
    home = str(Path.home())
    with pytest.raises(ConfigError, match=re.escape(f"conf/data/voc.yaml: data.root: '~/imgs' starts with '~', which "
                                                    f"DVC and Hydra do not expand; give the folder's full path, e.g. "
                                                    f"data.root={home}/imgs")):
        compose(["data=voc", "data.root='~/imgs'"])
    compose(["data=voc", f"data.root={home}/imgs"])  # the full path composes


def test_a_tasks_settings_sections_come_from_its_registry_entry(monkeypatch):
    """The schema has no list of tasks: a task added to the registry brings its `model`, `train`
    and `evaluate` sections (its package's settings classes), which a config must then hold."""
    from dataclasses import fields, replace

    from pipeline.multilabel.settings import MultiLabelTrain
    from pipeline.schema import known_keys, project_schema, validate

    params = OmegaConf.load(PROJECT_ROOT / "params.yaml")
    monkeypatch.setitem(TASKS, "tagger", replace(TASKS["multilabel"], name="tagger"))
    project_schema.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"missing key '(model|train|evaluate)\.tagger'"):
            validate(params)
        for part in ("model", "train", "evaluate"):
            params[part]["tagger"] = params[part]["multilabel"]
        params.train.tagger.pos_weight = "sometimes?"  # typed by the new task's class: a string or null
        assert validate(params).train.tagger.pos_weight == "sometimes?"
        params.train.tagger.cache_features = "maybe"
        with pytest.raises(ConfigError, match="'train.tagger.cache_features' expects true or false"):
            validate(params)
        assert "train.tagger.pos_weight" in known_keys(project_schema())
        trainings = next(f.type for f in fields(project_schema()) if f.name == "train")
        assert next(f.type for f in fields(trainings) if f.name == "tagger") is MultiLabelTrain
    finally:
        monkeypatch.undo()
        project_schema.cache_clear()
    assert "train.tagger.pos_weight" not in known_keys(project_schema())
