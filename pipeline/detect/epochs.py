"""How many epochs the detector trains (`train.detector.epochs`): light, so that the config check
can use it before any work starts."""

from __future__ import annotations

AUTO = "auto"


def check_epochs(cfg) -> None:
    """The registry's check of `train.detector.epochs` (a number of epochs or auto)."""
    training_epochs(cfg.train.detector, 1)


def training_epochs(tc, steps_per_epoch: int) -> int:
    """`epochs` when it is a number; for `auto`, `min_epochs`, or more on a small dataset: enough for
    `min_steps` optimizer steps (the heads need a few hundred steps, whatever the epochs)."""
    if tc.epochs == AUTO:
        return max(tc.min_epochs, -(-tc.min_steps // max(steps_per_epoch, 1)))
    if isinstance(tc.epochs, bool) or not isinstance(tc.epochs, int) or tc.epochs < 1:
        raise ValueError(f"train.detector.epochs: {tc.epochs!r} is neither a positive integer nor {AUTO}")
    return tc.epochs
