"""Start a training from a model this project trained (``model.<task>.pretrained: <path>``).

The source may be a checkpoint (``best.ckpt``, ``last.ckpt``), a model folder written by a training
stage (``models/detector``: its ``best.ckpt``) or a bundle written by the export stage (its
``model.pt2``). Every tensor of the new network must come from the source, with one exception: the
class outputs, rebuilt when the classes differ. Anything else that does not fit (another backbone,
another anchor layout) is an error naming the tensors, never a silently random start.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from pipeline.models.pretrained import project_checkpoint_state
from pipeline.predict.bundle import BUNDLE_FILE, PT2_FILE
from pipeline.training import MODEL_FILE

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "best.ckpt"
BUNDLE_PREFIXES = ("net.", "fcn.")  # the exported graphs wrap the network (each task's export.py)
BUNDLE_EXTRAS = ("anchors", "scale", "twins")  # the detector graph's own buffers, not the network's


def bundle_state(folder: Path) -> dict[str, torch.Tensor]:
    """The network's weights inside a bundle's ExportedProgram."""
    program = torch.export.load(str(folder / PT2_FILE))
    state = {}
    for name, tensor in program.state_dict.items():
        prefix = next((p for p in BUNDLE_PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            state[name.removeprefix(prefix)] = tensor
        elif name not in BUNDLE_EXTRAS:
            raise ValueError(f"{folder / PT2_FILE}: unexpected tensor {name!r}; is this a bundle of this project?")
    return state


def trained_state(source: str | Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint file, a model folder or a bundle folder."""
    path = Path(source)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            path = path / BEST_CHECKPOINT
        elif (path / BUNDLE_FILE).is_file() and (path / PT2_FILE).is_file():
            return bundle_state(path)
        else:
            raise FileNotFoundError(f"{source}: a folder to fine-tune from holds {MODEL_FILE} and {BEST_CHECKPOINT} "
                                    f"(a training's output) or {BUNDLE_FILE} and {PT2_FILE} (a bundle)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights not found; give a checkpoint, a model folder or a "
                                "bundle written by this project, imagenet, or none")
    return project_checkpoint_state(path)


def load_trained(net: nn.Module, source: str | Path, class_outputs: str, classes: Sequence[str]) -> list[str]:
    """Load ``source`` into ``net``. The tensors whose names match ``class_outputs`` (a regex) keep their new
    initialisation when the source's classes differ from ``classes`` (by name where the source
    records them, by count otherwise). Returns the names of those rebuilt tensors."""
    state, expected = trained_state(source), net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    renamed = source_classes(source) not in (None, list(classes))
    rebuilt = sorted(k for k in set(state) & set(expected) if re.match(class_outputs, k)
                     and (renamed or k in reshaped))
    wrong = [f"{k} {tuple(state[k].shape)} -> {tuple(expected[k].shape)}" for k in reshaped if k not in rebuilt]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}" for what, names in (
            ("missing in the source", missing), ("not in the new network", unexpected),
            ("other shapes", wrong)) if names)
        raise ValueError(f"pretrained {source}: its weights do not fit this model ({detail}). Fine-tuning keeps "
                         "the source's model settings (backbone, width, anchors); only the classes may differ.")
    net.load_state_dict({k: (expected[k] if k in rebuilt else v) for k, v in state.items()})
    if rebuilt:
        log.warning("pretrained %s: other classes than this dataset's, so the class outputs (%s) start afresh",
                    source, ", ".join(rebuilt))
    return rebuilt


def source_classes(source: str | Path) -> list[str] | None:
    """The classes a model folder or bundle was trained on (None for a bare checkpoint)."""
    path = Path(source)
    if (path / MODEL_FILE).is_file():
        return list(json.loads((path / MODEL_FILE).read_text())["classes"])
    if (path / BUNDLE_FILE).is_file():
        return list(json.loads((path / BUNDLE_FILE).read_text())["labels"])
    return None
