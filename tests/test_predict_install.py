"""`pip install cvpipe[predict]` is enough for `predict`: its requirements hold no torch, and a
prediction through a real bundle imports nothing beyond ONNX Runtime, numpy and Pillow."""

import subprocess
import sys
import tomllib

from tests.conftest import PROJECT_ROOT

PIPELINE_ONLY = ("torch", "torchvision", "lightning", "omegaconf", "hydra", "mlflow", "albumentations", "timm",
                 "torchmetrics", "sklearn", "scipy", "matplotlib", "cv2", "yaml", "dvc", "skimage", "onnx.")


def test_predict_extra_requires_onnxruntime_numpy_and_pillow_only():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    names = {r.split("==")[0].split("[")[0].lower() for r in project["optional-dependencies"]["predict"]}
    assert names == {"onnxruntime", "numpy", "pillow"}
    assert project["dependencies"] == []  # nothing else comes with the extra
    assert "torch==2.14.1" in project["optional-dependencies"]["pipeline"]


BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

class PipelineOnly(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED or any(name.startswith(b) for b in BLOCKED if b.endswith(".")):
            raise ImportError(f"predict imported {name}, which cvpipe[predict] does not install")

sys.meta_path.insert(0, PipelineOnly())
from pipeline.predict.cli import entry
sys.argv = ["predict", *sys.argv[1:]]
entry()
"""


def test_predict_runs_a_bundle_without_the_pipelines_packages(bundles, tiny_data, tmp_path):
    image = next((tiny_data / "prepared").rglob("*.png"))
    for task in ("classifier", "multilabel", "detector", "fcn"):
        done = subprocess.run([sys.executable, "-c", f"BLOCKED = {PIPELINE_ONLY!r}\n{BLOCKER}", str(bundles / task),
                               str(image), "--out", str(tmp_path / task)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{task}: {done.stderr[-2000:]}"
        assert image.name in done.stdout, done.stdout
