"""Run a stage script whose training stops at the start of its second epoch, after the first
epoch's checkpoints are written, writes PAUSE_FILE and waits there to be killed: a kill that
always lands mid-training, however busy the machine.

    python tests/paused_stage.py PAUSE_FILE stages/train.py --params ... classifier ...
"""

import runpy
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class PauseAtSecondEpoch(Callback):
    def __init__(self, flag: Path):
        self.flag = flag

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            self.flag.write_text("paused")
            while True:
                time.sleep(0.05)


class PausingTrainer(L.Trainer):
    def __init__(self, *args, callbacks=None, **kwargs):
        super().__init__(*args, callbacks=[*(callbacks or []), PauseAtSecondEpoch(FLAG)], **kwargs)


if __name__ == "__main__":
    FLAG, script = Path(sys.argv[1]), sys.argv[2]
    L.Trainer = PausingTrainer  # the stages build their Trainer as lightning.Trainer(...)
    sys.argv = [script, *sys.argv[3:]]
    runpy.run_path(script, run_name="__main__")
