"""`export`: a trained model folder -> a bundle folder that `predict` runs without torch.

The bundle: model.onnx (one file, dynamic batch; the FCN also dynamic height and width),
model.pt2 (the same graph as a torch.export ExportedProgram, which ONNX is converted from),
bundle.json (labels, preprocessing, post-processing), card.json (task, metrics, data manifest
hash, resolved config, git commit, export date) and samples.png (the bundle's own predictions,
made through `predict`'s code). Parity is checked before the bundle is complete: onnxruntime and
the reloaded ExportedProgram against PyTorch on real images.
"""

from __future__ import annotations

import copy
import datetime
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from pipeline.data.manifest import Manifest
from pipeline.export.int8 import int8_model
from pipeline.export.pooling import portable_max_pooling
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.models.exportable import Exportable
from pipeline.predict import draw
from pipeline.predict.bundle import (
    BUNDLE_FILE,
    CARD_FILE,
    FORMAT_VERSION,
    INT8_FILE,
    ONNX_FILE,
    PT2_FILE,
    SAMPLES_FILE,
    Bundle,
    session_of,
)
from pipeline.tasks import get_task
from pipeline.tracking import file_sha256, git_commit
from pipeline.training import RUN_FILE

TOLERANCE = 1e-4  # largest difference allowed between PyTorch and the exported graphs' outputs


class ParityError(ValueError):
    """The exported graph does not compute what the trained model does (one line for the user)."""
@contextmanager
def without_stack_traces():
    """Tracing without recording each graph node's Python stack where this torch has the switch
    (torch.fx.config.do_not_emit_stack_traces: torch 2.14 has it, 2.11 not; recording them was about a third of
    the ONNX conversion). Without it the traces are recorded, then dropped from the graph and the
    ONNX file (they name this machine's source files): the same bundle, a little slower."""
    config = getattr(torch.fx, "config", None)
    if config is None or not hasattr(config, "do_not_emit_stack_traces"):
        yield
        return
    before = config.do_not_emit_stack_traces
    config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        config.do_not_emit_stack_traces = before


def out_of_place_activations(graph: nn.Module) -> nn.Module:
    """``graph``, or a copy whose in-place activations (ReLU, ReLU6, ...) write new tensors: the same
    numbers, and a graph the ONNX conversion takes as it is. An in-place activation is rewritten
    there through torch's reference implementation on symbolic shapes, which was about 40 % of
    converting the MobileNet-style classifier (its ReLU6s) on 2 CPU cores."""
    names = [name for name, m in graph.named_modules() if getattr(m, "inplace", None) is True]
    if not names:
        return graph
    graph = copy.deepcopy(graph)
    for name in names:
        graph.get_submodule(name).inplace = False
    return graph


def exported_program(ex: Exportable) -> torch.export.ExportedProgram:
    """The graph captured by torch.export: dynamic batch (the FCN also dynamic height and width),
    without the stack traces that name this machine's source files."""
    dims = {0: torch.export.Dim("batch", min=1, max=1024)}
    if ex.dynamic_size:  # the least size and the strides' divisibility are the network's: torch.export finds them
        dims.update({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO})
    # batch 2: the batch axis stays free. In the default memory layout: a trace of channels-last
    # inputs (what `batch` makes) may record reshapes as views that only that layout allows, which
    # the ONNX conversion then fails on (seen with one CPU thread)
    example = torch.from_numpy(np.ascontiguousarray(np.concatenate([ex.inputs[0], ex.inputs[0]])))
    graph = out_of_place_activations(portable_max_pooling(ex.graph) if ex.dynamic_size else ex.graph)
    # (parity compares the exported graph with ex.graph itself)
    with torch.no_grad(), without_stack_traces():
        program = torch.export.export(graph, (example,), dynamic_shapes=(dims,))
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    return program


def export_onnx(program: torch.export.ExportedProgram, ex: Exportable, path: Path) -> None:
    with warnings.catch_warnings(), without_stack_traces():
        warnings.simplefilter("ignore")
        torch.onnx.export(program, input_names=["images"], output_names=list(ex.graph.outputs), f=str(path),
                          dynamo=True, external_data=False, verbose=False)
    side = [p.name for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path]
    if side:
        raise RuntimeError(f"export: ONNX wrote side files {side}; the bundle must be one file")


def strip_onnx_debug_info(path: Path) -> None:
    """Drop the exporter's per-node records (stack traces naming this machine's source files)."""
    import onnx

    model = onnx.load(str(path))

    def clear(nodes) -> None:
        for node in nodes:
            node.doc_string = ""
            del node.metadata_props[:]
            for attribute in node.attribute:
                clear(attribute.g.node)
                for graph in attribute.graphs:
                    clear(graph.node)

    clear(model.graph.node)
    for function in model.functions:
        clear(function.node)
    onnx.save(model, str(path))


def max_difference(a, b) -> float:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


@torch.no_grad()
def parity(ex: Exportable, out: Path) -> dict:
    """onnxruntime and the saved ExportedProgram (reloaded) against eager PyTorch on the real inputs
    (each batch whole and its first image alone); for the detector also the detections after
    post-processing."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
    exported = torch.export.load(str(out / PT2_FILE)).module()
    onnx_diff = pt2_diff = 0.0
    shapes = []
    for full in ex.inputs:
        for x in (full, full[:1]):
            eager = ex.graph(torch.from_numpy(x))
            eager_np = [t.numpy() for t in (eager if isinstance(eager, tuple) else (eager,))]
            onnx_diff = max(onnx_diff, max_difference(session.run(None, {"images": x}), eager_np))
            again = exported(torch.from_numpy(x))
            pt2_diff = max(pt2_diff, max_difference([t.numpy() for t in (
                again if isinstance(again, tuple) else (again,))], eager_np))
            shapes.append(list(x.shape))
    result = {"onnx_max_abs_diff": onnx_diff, "pt2_max_abs_diff": pt2_diff, "inputs": shapes,
              "tolerance": TOLERANCE}
    result["failed"] = [f"{k} {result[k]:.3g} > {TOLERANCE}" for k in ("onnx_max_abs_diff", "pt2_max_abs_diff")
                        if result[k] > TOLERANCE]
    if ex.parity is not None:
        name, report, failed = ex.parity(ex, session)
        result[name] = report
        result["failed"] += failed
    return result


def plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def card(task: str, cfg: DictConfig, spec: dict, manifest_path: Path, metrics: dict | None, model_dir: Path,
         out: Path, headline: dict | None) -> dict:
    keys = ("seed", f"model.{task}", f"train.{task}", f"augment.{get_task(task).augment}", f"evaluate.{task}")
    config = {key: plain(OmegaConf.select(cfg, key, throw_on_missing=True)) for key in keys}
    run = json.loads((model_dir / RUN_FILE).read_text()) if (model_dir / RUN_FILE).is_file() else {}
    return {"task": task, "labels": spec["labels"], "headline": headline, "metrics": metrics,
            "data": {"name": cfg.data.name, "manifest_sha256": file_sha256(manifest_path)},
            "config": config, "git_commit": git_commit(),
            "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "training_run": run.get("run_id"),
            "files": {name: file_sha256(out / name) for name in (ONNX_FILE, PT2_FILE, INT8_FILE)
                      if (out / name).is_file()}}


def export_bundle(task: str, cfg: DictConfig, model_dir: str | Path, manifest_path: str | Path,
                  metrics_path: str | Path | None, out_dir: str | Path, parity_path: str | Path,
                  headline_path: str | Path | None = None) -> dict:
    """Write the bundle of ``task`` atomically; return the parity figures. ``metrics_path``: the
    evaluation's full results (reports/<task>.json), ``headline_path`` its headline (metrics/<task>.json)."""
    model_dir, manifest_path = Path(model_dir), Path(manifest_path)
    metrics, headline = (json.loads(Path(p).read_text()) if p and Path(p).is_file() else None
                         for p in (metrics_path, headline_path))
    ex = get_task(task).step("export")(cfg, model_dir, Manifest.read(manifest_path), metrics)
    spec = {**ex.spec, "input": "images", "outputs": list(ex.graph.outputs), "format": "onnx",
            "format_version": FORMAT_VERSION}
    with atomic_dir(out_dir) as out:
        program = exported_program(ex)
        torch.export.save(program, out / PT2_FILE)
        export_onnx(program, ex, out / ONNX_FILE)
        strip_onnx_debug_info(out / ONNX_FILE)
        checked = parity(ex, out)
        if checked["failed"]:  # the report is kept for the user; no bundle is written
            atomic_write_json(parity_path, checked)
            raise ParityError(f"export {task}: parity failed: {'; '.join(checked['failed'])} "
                              f"(the full report is in {parity_path})")
        if cfg.export.int8.enabled:
            checked["int8"] = int8_model(cfg.export.int8, Bundle(out, spec, session_of(out / ONNX_FILE)),
                                         Manifest.read(manifest_path))
            if checked["int8"] and checked["int8"]["shipped"]:
                spec["int8"] = INT8_FILE
        atomic_write_json(out / BUNDLE_FILE, spec)
        samples = Bundle.load(out)
        draw.grid([samples.kind.draw(px, result, samples) for px, result in
                   zip(ex.sample_images, samples.kind.infer(samples, ex.sample_images))]).save(out / SAMPLES_FILE)
        atomic_write_json(out / CARD_FILE, {**card(task, cfg, spec, manifest_path, metrics, model_dir, out, headline),
                                            "parity": checked})
    atomic_write_json(parity_path, checked)
    if cfg.export.register:
        from pipeline.export.registry import register

        checked = {**checked, "registry": register(cfg, task, Path(out_dir), model_dir, ex.graph, metrics)}
    return checked
