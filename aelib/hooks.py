"""What hooks into the training loop of :func:`aelib.train.train_epoch` without cluttering it.

:class:`Step` runs a forward and a backward pass: plainly, as the seed did, or with a process's
share of the batch under DDP (:mod:`aelib.distributed`), mixed precision (Micikevicius et al.
2018, "Mixed Precision Training", https://arxiv.org/abs/1710.03740) and ``torch.compile``.
:class:`EpochLog` keeps the batch losses on the device, reads them every ``check_every`` batches
for the progress bar and the NaN check, and gives the epoch's mean loss per image.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from .distributed import Shard, wrap


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _float32(out):
    """Cast a model output (a tensor or a named tuple of tensors) to float32."""
    if isinstance(out, torch.Tensor):
        return out.float()
    return type(out)(*(t.float() for t in out))


class Step:
    """The forward and backward passes of one training step.

    Args:
        model: the module being trained.
        device: where it trains; default: where its parameters are.
        shard: this process's place under DDP; default: one process.
        amp: run the forward pass under ``torch.autocast`` (bfloat16 on the CPU, float16
            elsewhere); the output is cast back to float32 for the loss.
        scaler: a ``torch.amp.GradScaler`` (float16 needs one), or None.
        compile_mode: ``None`` (eager) or a ``torch.compile`` mode such as ``"default"``.
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | None = None,
        shard: Shard | None = None,
        amp: bool = False,
        scaler: torch.amp.GradScaler | None = None,
        compile_mode: str | None = None,
    ):
        self.device = device if device is not None else next(model.parameters()).device
        self.shard, self.amp, self.scaler = shard or Shard(), amp, scaler
        module = wrap(model, self.shard, self.device)
        self.module = torch.compile(module, mode=compile_mode) if compile_mode else module
        self.weight = 1.0

    def share(self, xb: torch.Tensor, x_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's part of the targets ``xb`` and inputs ``x_in`` ``(B, d)``."""
        self.weight = self.shard.weight(len(xb))
        return self.shard.take(xb), self.shard.take(x_in)

    def forward(self, x_in: torch.Tensor):
        """``model(x_in)``: logits ``(b, d)`` (or a VAE's output), in float32."""
        if not self.amp:
            return self.module(x_in)
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            return _float32(self.module(x_in))

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward()`` and ``optimizer.step()``, with the DDP weight and loss scaling."""
        if self.weight != 1.0:  # see Shard.weight
            loss = loss * self.weight
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)  # skips the step if a gradient overflowed
            self.scaler.update()


class EpochLog:
    """The batch losses of one epoch, kept on the device and read every ``check_every`` batches.

    Writing each loss into a device tensor instead of calling ``loss.item()`` (as the seed did)
    spares a GPU a wait at every batch.

    Args:
        n: images in the epoch (over all processes).
        batch_size: images per global batch.
        device: where the losses are kept.
        shard: this process's place under DDP.
        epoch: the epoch's number, for messages.
        bar: a tqdm progress bar, or None.
        check_every: batches between two reads of the losses.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        device: torch.device | str = "cpu",
        shard: Shard | None = None,
        epoch: int = 1,
        bar: tqdm | None = None,
        check_every: int = 50,
    ):
        self.n, self.batch_size, self.shard = n, batch_size, shard or Shard()
        self.epoch, self.bar, self.check_every = epoch, bar, check_every
        num_batches = math.ceil(n / batch_size)
        sizes = [self.shard.size(min(batch_size, n - i * batch_size)) for i in range(num_batches)]
        self.sizes = torch.tensor(sizes, dtype=torch.float32, device=device)
        self.losses = torch.empty(num_batches, device=device)
        self.checked = 0
        self.first_loss: float | None = None  # the first batch's loss over all processes

    def record(self, i: int, loss: torch.Tensor) -> None:
        """Store the mean loss of batch ``i``; every ``check_every`` batches, check and show."""
        self.losses[i] = loss.detach()
        if self.bar is not None:
            self.bar.update(1)
        if (i + 1) % self.check_every == 0 or i + 1 == len(self.losses):
            check_finite(self.losses[self.checked : i + 1], self.checked, self.epoch)
            self.checked = i + 1
            if self.bar is not None and not self.bar.disable:
                seen = self.sizes[: i + 1]
                mean = (self.losses[: i + 1] * seen).sum().item() / seen.sum().item()
                self.bar.set_postfix(loss=f"{mean:.2f}")

    def mean(self) -> float:
        """The epoch's mean loss per image over all processes (sets :attr:`first_loss` too)."""
        totals = torch.stack([(self.losses * self.sizes).sum(), self.losses[0] * self.sizes[0]])
        total, first = self.shard.all_reduce(totals).tolist()
        self.first_loss = first / min(self.batch_size, self.n)
        return total / self.n


def check_finite(losses: torch.Tensor, offset: int, epoch: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the first NaN or infinite batch loss."""
    bad = torch.nonzero(~torch.isfinite(losses))
    if len(bad):
        batch = offset + int(bad[0])
        raise NonFiniteLossError(
            f"the training loss became {losses[int(bad[0])].item()} at epoch {epoch}, "
            f"batch {batch} "
            "(counting from 0); lower the learning rate, or check the inputs for NaN and the loss "
            "for log(0)"
        )
