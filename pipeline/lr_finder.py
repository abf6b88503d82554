"""The learning-rate finder of fast.ai's lessons, run by Lightning's ``LearningRateFinder`` before a
training (``train.<model>.lr_find.enabled``): a short run that raises the learning rate every step
from ``min_lr`` to ``max_lr``, then the weights are put back and the training runs at the suggested
rate (the steepest fall of the loss) instead of ``train.<model>.lr``; the discriminative
multipliers (``lr_mult``) apply to it as they would to ``lr``.

What it writes: ``lr_find.png`` (loss against learning rate, the suggestion marked) and
``lr_find.json`` (the suggestion, the configured rate, every point) in the model folder, both
logged to the training's MLflow run with the metric ``lr_find_suggestion``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateFinder
from matplotlib import pyplot as plt

from pipeline.io.atomic import atomic_write_json
from pipeline.schema import LrFind

PICTURE, RESULT = "lr_find.png", "lr_find.json"


@contextlib.contextmanager
def first_phase_only(trainer: L.Trainer, module: L.LightningModule):
    """The search's steps may span several epochs (the loop's epoch limit is lifted for it); they
    all stay in the training's first phase (frozen backbone, cached features), which the module and
    the data switch by epoch number."""
    loop, pinned = trainer.fit_loop, []
    for owner, name in ((module, "freeze_epochs"), (trainer.datamodule, "cache_until_epoch")):
        if getattr(owner, name, 0):
            pinned.append((owner, name, getattr(owner, name)))
            setattr(owner, name, sys.maxsize)
    max_epochs, loop.max_epochs = loop.max_epochs, -1  # -1: no limit but the search's steps
    try:
        yield
    finally:
        loop.max_epochs = max_epochs
        for owner, name, value in pinned:
            setattr(owner, name, value)


class LoggedLearningRateFinder(LearningRateFinder):
    def __init__(self, settings: LrFind, folder: Path):
        super().__init__(min_lr=settings.min_lr, max_lr=settings.max_lr, num_training_steps=settings.steps,
                         update_attr=True)
        self.folder = folder

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path:  # a resumed training: its optimizer state holds the rate found before
            return
        configured = float(pl_module.lr)
        with first_phase_only(trainer, pl_module):
            self.lr_find(trainer, pl_module)
        found = self.optimal_lr
        suggestion = found.suggestion()
        if suggestion is None:  # too few points: Lightning leaves the rate as configured
            print(f"warning: the learning-rate finder made no suggestion ({len(found.results['lr'])} points); "
                  f"training at the configured lr {configured:g}", file=sys.stderr)
        else:  # the optimizer and its schedule were made with the configured rate: made again with the new one
            trainer.strategy.setup_optimizers(trainer)
        if not trainer.is_global_zero:
            return
        figure = found.plot(suggest=suggestion is not None, show=False)
        figure.axes[0].set_title(f"suggested lr {suggestion:.3g}" if suggestion else "no suggestion")
        figure.savefig(self.folder / PICTURE, dpi=100)
        plt.close(figure)
        atomic_write_json(self.folder / RESULT, {
            "suggestion": suggestion, "configured_lr": configured, "used_lr": float(pl_module.lr),
            "lr": [float(v) for v in found.results["lr"]], "loss": [float(v) for v in found.results["loss"]]})
        if suggestion is not None:
            trainer.logger.log_metrics({"lr_find_suggestion": suggestion}, step=0)
        for name in (PICTURE, RESULT):
            trainer.logger.log_artifact(self.folder / name)


def lr_finder(settings: LrFind, folder: Path) -> list[LearningRateFinder]:
    """The finder as a training callback, or none when ``settings.enabled`` is off."""
    return [LoggedLearningRateFinder(settings, folder)] if settings.enabled else []
