"""Per-epoch training curves as files, so that `dvc plots show` draws them and `dvc plots diff`
compares experiments (MLflow holds the same values for its own charts).

Each metric a training logs once per epoch goes to ``<model folder>/epochs/<metric>.csv``
(columns ``epoch`` and the metric); dvc.yaml's top-level ``plots`` point at those folders.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from pipeline.io.atomic import atomic_write_text

FOLDER = "epochs"


class EpochTables(Callback):
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After the epoch's validation: one row per metric. Rows of this epoch or later, left by an
        interrupted run that this one resumes, are replaced, so every epoch appears once."""
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        self.folder.mkdir(exist_ok=True)
        epoch = trainer.current_epoch
        for name, value in sorted(trainer.callback_metrics.items()):
            if value.numel() != 1:
                continue
            path = self.folder / f"{name}.csv"
            rows = [row for row in read_rows(path) if int(row[0]) < epoch] + [[str(epoch), f"{float(value):.6g}"]]
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows([["epoch", name], *rows])
            atomic_write_text(path, text.getvalue())


def read_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        return []
    return list(csv.reader(path.read_text().splitlines()))[1:]
