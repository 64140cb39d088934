"""Training with the whole data set resident on the device.

Each epoch draws a seeded permutation and slices mini-batches out of one tensor: no DataLoader,
no per-sample transforms, no per-batch host synchronisation (the batch losses are written into a
device tensor and read at the progress bar's pace). Adam (Kingma & Ba 2015,
https://arxiv.org/abs/1412.6980) is fused where torch supports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .data import to_float
from .losses import bce_loss
from .utils import eval_mode, pick_device

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Regularizer = Callable[[nn.Module, torch.Tensor], torch.Tensor]
Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch losses (mean per image, as the seed printed them) and epoch times in seconds."""

    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(d.get(k, [])) for k in ("train_loss", "test_loss", "epoch_seconds")})


def _check_images(x: torch.Tensor, name: str, input_dim: int | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if not (x.dim() == 2 or (x.dim() == 4 and x.shape[1] == 1)) or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, 784) or (N, 1, 28, 28), got {tuple(x.shape)}")
    is_uint8 = x.dtype == torch.uint8  # 0-255 scaled to [0, 1]: in range by construction
    x = to_float(x)
    if input_dim is not None and x.shape[1] != input_dim:
        raise ValueError(f"{name} has {x.shape[1]} values per image but the model takes {input_dim}")
    if not is_uint8:
        low, high = torch.aminmax(x)  # one pass; NaN propagates and fails both comparisons
        if not (low >= 0 and high <= 1):
            raise ValueError(f"{name} must hold finite pixel values in [0, 1] (or uint8 0-255); "
                             f"got range [{low.item():.3g}, {high.item():.3g}]")
    return x


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with the given learning rate, fused into one kernel where torch supports it.

    Args:
        model: the module whose parameters Adam updates (already on its device).
        lr: the learning rate eta, positive.
    Returns:
        A ``torch.optim.Adam`` with the default betas (0.9, 0.999) and eps 1e-8.
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    device = next(model.parameters()).device
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda", "mps"))
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, loss_fn: LossFn = bce_loss, batch_size: int = 4096) -> float:
    """Mean per-image loss of ``model`` on ``x``, in large batches without autograd.

    Args:
        model: maps ``(B, 784)`` to logits ``(B, 784)``.
        x: images ``(N, 784)`` or ``(N, 1, 28, 28)``, uint8 or float in [0, 1].
        loss_fn: ``loss_fn(logits, x) -> mean loss over the batch``.
        batch_size: images per forward pass.
    Returns:
        The loss averaged over all ``N`` images.
    """
    device = next(model.parameters()).device
    x = to_float(x)
    total = torch.zeros((), device=device)
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            total += loss_fn(model(xb), xb) * len(xb)
    return total.item() / len(x)


def fit(model: nn.Module, x_train: torch.Tensor, x_test: torch.Tensor | None = None, *,
        num_epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, seed: int = 42,
        device: str | torch.device | None = None, loss_fn: LossFn = bce_loss,
        optimizer: torch.optim.Optimizer | None = None, history: History | None = None,
        regularizer: Regularizer | None = None, corruption: Corruption | None = None,
        amp: bool = False, compile_mode: str | None = None,
        progress: bool = True, verbose: bool = True, check_every: int = 50,
        on_epoch_end: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` to reconstruct ``x_train`` with Adam; return the per-epoch losses.

    Each step minimises ``loss_fn(model(x_in), x) + regularizer(model, x_in)`` averaged over the
    images of a batch, where ``x_in = corruption(x, generator)`` (denoising) or ``x`` itself. Adam is
    invariant to the scale of the loss (up to its ``eps``), so this takes the same steps as the
    seed's summed loss. All randomness inside an epoch is drawn from generators seeded by
    ``(seed, epoch)``: the order of the images, the corruptions and a VAE's samples each from a
    stream of its own, so runs repeat exactly, resumed runs match, and no two streams coincide.
    To resume, pass the restored ``optimizer`` and ``history``: training continues at epoch
    ``len(history) + 1`` and stops after epoch ``num_epochs`` (a total, not a count of new epochs),
    drawing the same permutations as an uninterrupted run.

    Under ``torch.distributed`` (``torchrun``), each process takes its shard of every global batch
    of ``batch_size`` images, ``DistributedDataParallel`` averages the gradients, and the reported
    training loss is that of the whole global batch; only rank 0 shows progress and prints.

    Args:
        model: an autoencoder returning logits ``(B, 784)`` for inputs ``(B, 784)``.
        x_train: training images ``(N, 1, 28, 28)`` uint8 or ``(N, 784)`` float in [0, 1].
        x_test: test images, evaluated after every epoch (optional).
        num_epochs: the epoch to stop after.
        batch_size: images per step, over all processes (the last batch may be smaller).
        lr: Adam's learning rate (ignored when ``optimizer`` is given).
        seed: seeds each epoch's permutation (with ``seed * 1_000_003 + epoch``) and random streams.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``; default: where the model is.
        loss_fn: ``loss_fn(model_output, x) -> scalar``, default the seed's BCE on logits (use
            :func:`aelib.losses.negative_elbo` for a VAE).
        optimizer: an optimizer over ``model``'s parameters; default :func:`make_optimizer`.
        history: losses of the epochs already done (to resume); default a new :class:`History`.
        regularizer: ``regularizer(model, x_in) -> penalty`` added to the training loss (sparse,
            contractive: see :mod:`aelib.regularizers`); the reported losses include it for training
            and leave it out for the test set.
        corruption: ``corruption(x, generator) -> x_tilde`` applied to training inputs only.
        amp: mixed precision for the forward pass (float16 with loss scaling on CUDA, bfloat16 on
            the CPU); the loss is still computed and reported in float32.
        compile_mode: ``None`` (eager), or a ``torch.compile`` mode such as ``"default"`` or
            ``"reduce-overhead"`` (CUDA graphs on a GPU).
        progress: show a tqdm progress bar per epoch.
        verbose: print the seed's per-epoch lines (``====> Epoch: N Average training loss: X``).
        check_every: batches between the reads of the losses (progress bar and NaN check).
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after each epoch.
    Returns:
        The :class:`History`, extended by the epochs run.
    Raises:
        NonFiniteLossError: a batch loss was NaN or infinite; names the epoch and batch.
    """
    if not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be a non-negative integer, got {num_epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f"fit trains float32 models (mixed precision comes from amp=True); this model's "
                         f"parameters are {', '.join(sorted(map(str, dtypes)))}: call model.float() first")
    device = pick_device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    input_dim = getattr(model, "input_dim", None)
    x = _check_images(x_train, "x_train", input_dim).to(device)
    x_eval = _check_images(x_test, "x_test", input_dim).to(device) if x_test is not None else None
    shard = _Shard.current(regularizer)
    run = _Run(model=model, step_model=_step_model(model, shard, compile_mode, device),
               optimizer=optimizer or make_optimizer(model, lr), loss_fn=loss_fn, regularizer=regularizer,
               corruption=corruption, amp=amp, device=device, shard=shard, batch_size=batch_size,
               check_every=check_every)
    history = history if history is not None else History()
    show = shard.rank == 0
    for epoch in range(len(history) + 1, num_epochs + 1):
        start_time = time.perf_counter()
        epoch_seed = seed * 1_000_003 + epoch  # the order of the images
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            # modules that draw from the global generator (the VAE's eps) get a stream of their own,
            # different on every process under DDP
            torch.manual_seed(_stream_seed(seed, epoch, 2 + shard.rank))
            bar = tqdm(total=run.num_batches(len(x)), desc=f"epoch {epoch}/{num_epochs}",
                       disable=not (progress and show), leave=False)
            with torch.enable_grad():  # training works even when called under torch.no_grad()
                history.train_loss.append(run.epoch(x, epoch, epoch_seed, _stream_seed(seed, epoch, 1), bar))
            bar.close()
            if x_eval is not None:
                history.test_loss.append(evaluate(model, x_eval, loss_fn))
        history.epoch_seconds.append(time.perf_counter() - start_time)
        if verbose and show:
            tqdm.write(f"====> Epoch: {epoch} Average training loss: {history.train_loss[-1]:.4f}")
            if x_eval is not None:
                tqdm.write(f"====> Test set loss: {history.test_loss[-1]:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history


@dataclass
class _Shard:
    """This process's place among ``world`` data-parallel processes (1 without torch.distributed)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls, regularizer) -> "_Shard":
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        if regularizer is not None:
            raise ValueError("regularizers call the model outside DistributedDataParallel's forward; "
                             "train regularized models in one process")
        return cls(dist.get_rank(), dist.get_world_size())

    def take(self, xb: torch.Tensor) -> torch.Tensor:
        return xb if self.world == 1 else torch.tensor_split(xb, self.world)[self.rank]

    def size(self, global_size: int) -> int:
        return global_size // self.world + (1 if self.rank < global_size % self.world else 0)


def _step_model(model: nn.Module, shard: _Shard, compile_mode: str | None, device: torch.device) -> nn.Module:
    """The module the training steps call: the model, wrapped for DDP and compiled as asked."""
    step_model = model
    if shard.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(step_model, mode=compile_mode) if compile_mode else step_model


def _float32(out):
    """Cast a model output (a tensor or a named tuple of tensors) to float32."""
    if isinstance(out, torch.Tensor):
        return out.float()
    return type(out)(*(t.float() for t in out))


@dataclass
class _Run:
    """Everything one training step needs; :meth:`epoch` runs one pass over the data."""

    model: nn.Module
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    regularizer: Regularizer | None
    corruption: Corruption | None
    amp: bool
    device: torch.device
    shard: _Shard
    batch_size: int
    check_every: int
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self):
        float16 = self.amp and self.device.type in ("cuda", "mps")  # float16 needs loss scaling; bfloat16 not
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=float16)

    def num_batches(self, n: int) -> int:
        return (n + self.batch_size - 1) // self.batch_size

    def step(self, xb: torch.Tensor, x_in: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        """One optimizer step; returns the mean loss per image (0 for an empty shard).

        Args:
            xb: the clean targets ``(b, d)``.
            x_in: the model's inputs ``(b, d)``: ``xb`` itself, or its corrupted copy.
            weight: scales the loss before ``backward``. Under DDP a process whose shard holds ``b``
                of a global batch of ``B`` images uses ``b * world / B``, so that the gradient DDP
                averages over the processes is the gradient of the mean loss over the global batch.
        """
        self.optimizer.zero_grad(set_to_none=True)
        amp_dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        with torch.autocast(self.device.type, dtype=amp_dtype, enabled=self.amp):
            out = self.step_model(x_in)
        if len(xb) == 0:  # a DDP shard of a last batch smaller than the world: join the all-reduce with zeros
            loss = sum(t.sum() for t in ([out] if isinstance(out, torch.Tensor) else out)) * 0.0
        else:
            loss = self.loss_fn(_float32(out), xb)
        if self.regularizer is not None:
            loss = loss + self.regularizer(self.model, x_in)
        self.scaler.scale(loss * weight).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def epoch(self, x: torch.Tensor, epoch: int, order_seed: int, noise_seed: int, bar) -> float:
        """One pass over ``x`` in a seeded order; returns the mean training loss per image.

        A corruption is applied to the whole global batch before it is split among DDP processes,
        so one process and several see the same noisy images.
        """
        self.model.train()
        n, bs = len(x), self.batch_size
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(order_seed)).to(self.device)
        noise = torch.Generator(device=self.device).manual_seed(noise_seed)
        num_batches = self.num_batches(n)
        sizes = torch.tensor([self.shard.size(min(bs, n - i * bs)) for i in range(num_batches)],
                             dtype=torch.float32, device=self.device)
        batch_losses = torch.empty(num_batches, device=self.device)
        checked = 0
        for i in range(num_batches):
            global_batch = x[perm[i * bs:(i + 1) * bs]]
            x_in = global_batch if self.corruption is None else self.corruption(global_batch, noise)
            xb = self.shard.take(global_batch)
            weight = len(xb) * self.shard.world / len(global_batch)
            batch_losses[i] = self.step(xb, self.shard.take(x_in), weight)
            bar.update(1)
            if (i + 1) % self.check_every == 0 or i + 1 == num_batches:
                _check_finite(batch_losses[checked:i + 1], checked, epoch)
                checked = i + 1
                if not bar.disable:
                    seen = sizes[:i + 1]
                    bar.set_postfix(loss=f"{(batch_losses[:i + 1] * seen).sum().item() / seen.sum().item():.2f}")
        total = (batch_losses * sizes).sum()
        if self.shard.world > 1:
            dist.all_reduce(total)
        return total.item() / n


def _stream_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream of one epoch, independent of every other (seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _check_finite(losses: torch.Tensor, offset: int, epoch: int) -> None:
    bad = torch.nonzero(~torch.isfinite(losses))
    if len(bad):
        batch = offset + int(bad[0])
        raise NonFiniteLossError(
            f"the training loss became {losses[int(bad[0])].item()} at epoch {epoch}, batch {batch} "
            "(counting from 0); lower the learning rate, or check the inputs for NaN and the loss "
            "for log(0)")
