"""The record of a training run: per-epoch losses and times (what :func:`aelib.fit` returns)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """Per-epoch losses (mean per image, as the seed printed them) and epoch times in seconds.

    ``first_batch_loss`` is the loss of the run's first batch, before any step: the yardstick of
    the divergence check, kept here so that a resumed run checks against the same number.
    """

    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    first_batch_loss: float | None = None

    def __len__(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        lists = {k: list(d.get(k, [])) for k in ("train_loss", "test_loss", "epoch_seconds")}
        return cls(**lists, first_batch_loss=d.get("first_batch_loss"))
