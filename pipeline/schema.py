"""The schema of the project's configuration: every key the code reads, with its type.

The values, defaults included, live in conf/ alone (composed into params.yaml): no field here
has a default, so a key that goes missing from conf/ or params.yaml is an error, not a silent
fallback. :func:`validate` checks a whole config against these classes (OmegaConf's structured
configs) and turns the first problem into one line naming the key, the file and, for a typo,
the closest known key.
"""

import ast
import difflib
import functools
import importlib.util
import inspect
from dataclasses import dataclass, field, is_dataclass, make_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional, get_args, get_origin, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from pipeline.tasks import TASKS


class Settings:
    """A section of the configuration as a typed object: ``Kind.of(cfg.train.detector)`` is the
    validated section as an instance of its dataclass (nested sections too, enums as members)."""

    @classmethod
    def of(cls, node):
        """``node`` (a validated config section, or a dict of one) as an instance of ``cls``."""
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node))


# --- data -----------------------------------------------------------------------------------------


@dataclass
class BoxRules(Settings):
    clip_tolerance: float = MISSING
    min_size: float = MISSING


@dataclass
class SplitRatios(Settings):
    source: str = MISSING      # auto | given | stratified (pipeline/data/sources/common.py)
    train: float = MISSING
    val: float = MISSING
    test: float = MISSING


@dataclass
class Data(Settings):
    name: str = MISSING
    format: str = MISSING
    root: str = MISSING
    models: List[str] = MISSING
    classes: Optional[List[str]] = MISSING
    allow_unannotated: bool = MISSING
    exif_box_frame: str = MISSING
    duplicates: str = MISSING
    class_case: str = MISSING  # keep | merge: class names that differ only in case
    max_image_pixels: int = MISSING
    boxes: BoxRules = MISSING
    split: SplitRatios = MISSING


@dataclass
class FolderData(Data):
    pass


@dataclass
class VocData(Data):
    images_dir: str = MISSING
    annotations_dir: str = MISSING


@dataclass
class CocoSplitFile(Settings):
    annotation_file: str = MISSING
    images_dir: str = MISSING


@dataclass
class CsvData(Data):
    images_dir: str = MISSING
    annotation_file: str = MISSING


@dataclass
class MultilabelCsvData(CsvData):
    label_separator: str = MISSING  # between the labels of one image (" ": any whitespace)


@dataclass
class CocoData(CsvData):
    split_files: Optional[Dict[str, CocoSplitFile]] = MISSING  # split -> its own annotation file and images


@dataclass
class KittiData(Data):
    images_dir: str = MISSING
    labels_dir: str = MISSING


@dataclass
class YoloData(KittiData):
    names_file: str = MISSING


@dataclass
class SyntheticData(Data):
    seed: int = MISSING
    num_images: int = MISSING
    image_size: List[int] = MISSING
    objects_per_image: List[int] = MISSING
    scale: List[float] = MISSING
    aspect: List[float] = MISSING
    max_overlap: float = MISSING
    backgrounds: List[str] = MISSING
    num_scenes: int = MISSING
    scene_size: List[int] = MISSING
    objects_per_scene: List[int] = MISSING


# Each data format, declared once: its settings (validated here) and its importer, the module
# pipeline/data/sources/<importer>.py (pipeline.data.sources.get_source)
DATA_FORMATS = {"folders": (FolderData, "folders"), "voc": (VocData, "voc"), "coco": (CocoData, "coco"),
                "csv": (CsvData, "csv_boxes"), "kitti": (KittiData, "kitti"), "yolo": (YoloData, "yolo"),
                "synthetic": (SyntheticData, "synthetic"), "multilabel_csv": (MultilabelCsvData, "multilabel_csv")}

# --- augmentation ---------------------------------------------------------------------------------


@dataclass
class BoxPolicy(Settings):  # albumentations.BboxParams
    format: str = MISSING
    min_visibility: float = MISSING
    min_area: float = MISSING
    min_width: float = MISSING
    min_height: float = MISSING
    clip: bool = MISSING


@dataclass
class Augment(Settings):
    input_size: Any = MISSING            # [width, height], or auto (pipeline/augment/input_size.py)
    auto_input_sizes: List[int] = MISSING  # the square sizes `auto` chooses from
    resize: str = MISSING
    pad_fill: int = MISSING
    boxes: Optional[BoxPolicy] = MISSING
    train: Dict[str, Any] = MISSING  # name -> albumentations transform (_target_ + arguments), or null


# --- models (shared; each task's own settings live in its package, named by its registry entry) ---


@dataclass
class ClassifierModel(Settings):
    name: str = MISSING
    pretrained: str = MISSING  # imagenet | none | a model folder, checkpoint or bundle of this project
    dropout: float = MISSING
    width: int = MISSING       # from-scratch backbones: channels of the first convolution
    hidden: int = MISSING      # fc6/fc7 units of the AlexNet-style head


# --- training -------------------------------------------------------------------------------------


class OptimizerName(Enum):
    adamw = "adamw"
    adam = "adam"
    sgd = "sgd"


@dataclass
class Optimizer(Settings):
    name: OptimizerName = MISSING
    momentum: float = MISSING  # SGD's momentum; Adam's and AdamW's first beta


@dataclass
class LrFind(Settings):
    enabled: bool = MISSING
    min_lr: float = MISSING
    max_lr: float = MISSING
    steps: int = MISSING


@dataclass
class Schedule(Settings):
    epochs: int = MISSING
    freeze_epochs: int = MISSING
    frozen_stem: bool = MISSING
    lr: float = MISSING
    lr_mult: List[float] = MISSING
    weight_decay: float = MISSING
    schedule: str = MISSING    # one_cycle | cosine | constant
    optimizer: Optimizer = MISSING
    lr_find: LrFind = MISSING  # the learning-rate finder before training (pipeline/lr_finder.py)
    monitor: str = MISSING     # best checkpoint and early stopping: one of the task's `monitors` (pipeline/tasks.py)
    batch_size: int = MISSING
    num_workers: Any = MISSING  # a count, or auto (pipeline/hardware.py)
    image_cache_mb: int = MISSING  # decoded images kept between epochs, all loader processes together
    early_stopping_patience: Optional[int] = MISSING


# --- evaluation, export, tracking -----------------------------------------------------------------


@dataclass
class SplitsEvaluation(Settings):
    splits: List[str] = MISSING


@dataclass
class Int8Export(Settings):
    enabled: bool = MISSING
    calibration_images: int = MISSING
    check_images: int = MISSING
    max_drop: float = MISSING


@dataclass
class Export(Settings):
    int8: Int8Export = MISSING
    register: bool = MISSING
    registered_model_prefix: str = MISSING
    alias: str = MISSING


@dataclass
class Logger(Settings):
    tracking_uri: Optional[str] = MISSING
    local_store: str = MISSING
    artifact_root: str = MISSING
    experiment: str = MISSING
    log_every_n_steps: int = MISSING
    progress_bar: bool = MISSING
    system_metrics_seconds: float = MISSING  # between samples of CPU, memory ... use; 0: not logged
    # set by `sweep` for each trial (null otherwise): the parent run, the run's name and tags
    parent_run_id: Optional[str] = MISSING
    run_name: Optional[str] = MISSING
    tags: Dict[str, str] = MISSING


@dataclass
class Sweep(Settings):
    name: str = MISSING
    task: str = MISSING
    objective: str = MISSING
    monitor: str = MISSING
    on_failure: str = MISSING
    data_cache: str = MISSING


# --- the whole configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSettings:
    """What a task declares of the configuration (its package's ``settings`` module, named by the
    registry): the classes of `model.<task>`, `train.<task>`, `evaluate.<task>` and of the
    `augment` section it trains on."""

    model: type
    train: type
    evaluate: type
    augment: type = Augment


def section(name: str, kinds: dict[str, type]) -> type:
    return make_dataclass(name, [(key, kind, field(default=MISSING)) for key, kind in kinds.items()],
                          bases=(Settings,))


@functools.cache
def project_schema() -> type:
    """The dataclass of a whole configuration: the shared sections, and each task's from its own
    package (pipeline.tasks: ``settings``)."""
    declared = {name: task.step("settings") for name, task in TASKS.items()}
    augments = {}
    for name, task in TASKS.items():
        kind = augments.setdefault(task.augment, declared[name].augment)
        if kind is not declared[name].augment:
            raise TypeError(f"tasks training on augment.{task.augment} declare different classes for it: "
                            f"{kind.__name__}, {declared[name].augment.__name__} ({name})")
    return section("Project", {
        "seed": int, "data": Data, "augment": section("Augments", augments),
        **{part: section(part.capitalize() + "Settings", {n: getattr(d, part) for n, d in declared.items()})
           for part in ("model", "train", "evaluate")},
        "trainer": Dict[str, Any],  # lightning.pytorch.Trainer arguments, checked against its signature
        "export": Export, "logger": Logger})


OPTIONAL_SECTIONS = {"sweep": Sweep}  # present in the sweep app's config only
IGNORED_SECTIONS = ("hydra",)         # Hydra's own settings, checked by Hydra


class ConfigError(ValueError):
    """A config that does not match the schema; the message is one line for the user."""


@functools.cache
def trainer_arguments() -> list[str]:
    """The argument names of Lightning's Trainer, read from its source file: importing Lightning to
    inspect the signature takes about 5 s on 2 CPU cores, which every check of params.yaml (the
    first stage's included, and every mistake reported) would pay. Where the source cannot be read
    that way (another layout of the package), the signature is inspected after all."""
    spec = importlib.util.find_spec("lightning")  # a top-level name: found without importing it
    source = Path(spec.submodule_search_locations[0]) / "pytorch/trainer/trainer.py" if spec else None
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        init = next(node for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name == "Trainer"
                    for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    except (AttributeError, OSError, SyntaxError, StopIteration):
        from lightning.pytorch import Trainer

        return [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    args = init.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.arg != "self"]


def known_keys(schema, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass schema (for suggestions)."""
    keys = []
    for name, kind in get_type_hints(schema).items():
        keys.append(prefix + name)
        nested = [k for k in (kind, *get_args(kind)) if is_dataclass(k)]  # X or Optional[X]
        if nested:
            keys += known_keys(nested[0], f"{prefix}{name}.")
    return keys


def suggestion(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        leaf, parent = key.rsplit(".", 1)[-1], key.rpartition(".")[0]
        siblings = [c for c in candidates if c.rpartition(".")[0] == parent]
        close = [f"{parent}.{m}" if parent else m
                 for m in difflib.get_close_matches(leaf, [s.rsplit(".", 1)[-1] for s in siblings], n=1, cutoff=0.6)]
    return f"; did you mean '{close[0]}'?" if close else ""


def schema_for(cfg: DictConfig, source: str):
    """The structured schema of ``cfg``, with the data section's class chosen by its format."""
    data_format = OmegaConf.select(cfg, "data.format", throw_on_missing=False)
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"{source}: data.format: {data_format!r} is not a known format; choose one of "
                          f"{', '.join(sorted(DATA_FORMATS))}")
    schema = OmegaConf.structured(project_schema())
    settings = DATA_FORMATS[data_format][0]
    schema.data = OmegaConf.structured(settings)
    return schema, settings


def validate(cfg: DictConfig, source: str = "params.yaml", locate=None) -> DictConfig:
    """``cfg`` checked against the schema: typed, complete, no unknown key. ``source`` names where
    the config came from (for the message); ``locate(key)``, if given, names the file that sets a key.
    Returns a plain (non-struct) copy with values converted to the declared types."""
    where = (lambda key: locate(key) or source) if locate else (lambda key: source)
    extra = {name: cfg[name] for name in list(cfg.keys()) if name in OPTIONAL_SECTIONS or name in IGNORED_SECTIONS}
    core = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k not in extra])
    schema, data_schema = schema_for(core, where("data.format"))
    candidates = known_keys(project_schema()) + [f"data.{k}" for k in known_keys(data_schema)]
    try:
        merged = OmegaConf.merge(schema, core)
        for name, section in extra.items():
            if name in OPTIONAL_SECTIONS:
                merged[name] = OmegaConf.merge(OmegaConf.structured(OPTIONAL_SECTIONS[name]), section)
                candidates += [f"{name}.{k}" for k in known_keys(OPTIONAL_SECTIONS[name])]
    except ConfigKeyError as exc:
        key = exc.full_key
        raise ConfigError(f"{where(key)}: unknown key '{key}'{suggestion(key, candidates)}") from None
    except ValidationError as exc:
        key = exc.full_key
        raise ConfigError(f"{where(key)}: '{key}' {type_problem(exc)}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{where(getattr(exc, 'full_key', ''))}: {str(exc).splitlines()[0]}") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"{where(missing[0])}: missing key '{missing[0]}'"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                          + "; every key is set in conf/ (run `python stages/sync_params.py` to refresh params.yaml)")
    allowed = trainer_arguments()
    for key in merged.trainer:
        if key not in allowed:
            raise ConfigError(f"{where('trainer.' + key)}: unknown key 'trainer.{key}' (not an argument of "
                              f"lightning's Trainer){suggestion(key, allowed).replace(chr(39) + key, chr(39) + key)}")
    plain = OmegaConf.create(OmegaConf.to_container(merged, resolve=True, enum_to_str=True))
    for name in extra:
        if name in IGNORED_SECTIONS:
            plain[name] = extra[name]
    return plain


TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def expected_type(kind) -> str:
    args = [a for a in get_args(kind) if a is not type(None)]
    if args and get_origin(kind) is not list and get_origin(kind) is not dict:  # Optional[X]
        return expected_type(args[0]) + " or null"
    if get_origin(kind) is list:
        return "a list"
    if get_origin(kind) is dict or is_dataclass(kind):
        return "a mapping of keys"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(member.value for member in kind)
    return TYPE_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def type_problem(exc: ValidationError) -> str:
    """'expects an integer, got 'ten'' from OmegaConf's error."""
    message = str(getattr(exc, "msg", exc)).splitlines()[0]
    got = message.split("alue '", 1)[1].split("'", 1)[0] if "alue '" in message else None  # (V|v)alue '...'
    hints = get_type_hints(exc.object_type) if is_dataclass(exc.object_type) else {}
    if exc.key in hints:
        return f"expects {expected_type(hints[exc.key])}" + (f", got {got!r}" if got is not None else "")
    return message
