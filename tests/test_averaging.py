"""The moving average of the weights: what validation sees, what the checkpoint keeps."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from pipeline.averaging import ExponentialMovingAverage, ema_decay


class Line(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.fit_line = torch.nn.Linear(2, 1)
        self.validated = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.fit_line(x), y)

    def validation_step(self, batch, batch_idx):
        self.validated.append(self.fit_line.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


class Steps(Callback):
    """The weights as trained after every optimizer step."""

    def __init__(self):
        self.weights = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.weights.append(module.fit_line.weight.detach().clone())


def test_validation_and_the_checkpoint_get_the_moving_average_and_a_resume_keeps_the_trained_weights(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(24, 2)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x @ torch.tensor([[2.0], [-1.0]])),
                                       batch_size=4)
    module, steps = Line(), Steps()
    decay, warmup = 0.6, 3.0
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0,
                        callbacks=[steps, ExponentialMovingAverage(decay, warmup),
                                   ModelCheckpoint(dirpath=tmp_path, filename="last")])
    trainer.fit(module, data, data)
    average = steps.weights[0]  # the first update copies the weights
    expected = []
    for n, weights in enumerate(steps.weights[1:], start=1):
        rate = decay * (1 - math.exp(-n / warmup))
        average = rate * average + (1 - rate) * weights
        if n in (5, 11):  # each epoch's last step: its validation follows
            expected.append(average)
    assert len(steps.weights) == 12 and not torch.allclose(average, steps.weights[-1], atol=1e-4)
    assert torch.allclose(module.validated[0], expected[0], atol=1e-6)  # validation sees the average
    assert torch.allclose(module.validated[-1], expected[-1], atol=1e-6)
    assert torch.allclose(module.fit_line.weight, average, atol=1e-6)  # the model left after training
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert torch.allclose(saved["state_dict"]["fit_line.weight"], average, atol=1e-6)
    assert torch.allclose(saved["current_model_state"]["fit_line.weight"], steps.weights[-1], atol=1e-6)


def test_the_decay_spans_the_horizon_in_steps():
    assert ema_decay(2, 50) == pytest.approx(0.99)
    with pytest.raises(ValueError, match="ema_epochs"):
        ema_decay(0, 50)


def test_an_update_reads_nothing_back_from_the_training_device():
    """On a GPU, reading a number back from the device waits for the step's work there. On the meta
    device (no data at all) any such read fails, so a CPU machine sees one too."""
    module = Line().to("meta")
    average = ExponentialMovingAverage(0.6, 3.0)
    average.setup(None, module, "fit")
    trainer = type("Trainer", (), {"ckpt_path": None, "global_step": 0})()
    average.on_train_start(trainer, module)
    for step in (1, 2, 3):
        trainer.global_step = step
        average.on_train_batch_end(trainer, module, None, None, step - 1)
    assert average._average_model.module.fit_line.weight.device.type == "meta"
    assert int(average._average_model.n_averaged) == 3
