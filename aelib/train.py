"""Training: the seed's loop in :func:`train_epoch`, and :func:`fit` around it.

:func:`train_epoch` is the seed's ``train()``: shuffle, slice mini-batches, forward, loss (plus a
regularizer), backward, an Adam step (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980).
:func:`evaluate` is its ``test()``. :func:`fit` runs the epochs: it checks the inputs, seeds
each epoch's random streams, prints the seed's log lines and stops a run that diverges. The
whole data set stays on the device: each epoch slices one tensor, with no DataLoader. What
scales the loop up (DDP, mixed precision, ``torch.compile``, progress bar, NaN checks) hooks in
through :mod:`aelib.hooks` and :mod:`aelib.distributed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .distributed import Shard, local_device
from .history import History
from .hooks import EpochLog, NonFiniteLossError, Step
from .images import image_batch
from .losses import bce_loss
from .utils import (
    MAX_SEED,
    check_positive_int,
    check_positive_number,
    eval_mode,
    preserved_random_states,
    resolve_seed,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Regularizer = Callable[[nn.Module, torch.Tensor], torch.Tensor]
Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

__all__ = [
    "FitOptions",
    "History",
    "LossDivergedError",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "make_optimizer",
    "make_scaler",
    "train_epoch",
]


class LossDivergedError(FloatingPointError):
    """The training loss exploded (without becoming NaN) and is not coming back."""


def train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn = bce_loss,
    *,
    batch_size: int = 128,
    order: torch.Generator | None = None,
    regularizer: Regularizer | None = None,
    corruption: Corruption | None = None,
    noise: torch.Generator | None = None,
    step: Step | None = None,
    log: EpochLog | None = None,
) -> float:
    """One pass over ``x`` in a random order: the seed's ``train()``.

    Args:
        model: returns logits ``(B, 784)`` for images ``(B, 784)`` (a VAE: its output tuple).
        x: training images ``(N, 784)``, float in [0, 1], on the model's device.
        optimizer: updates ``model``'s parameters (Adam: :func:`make_optimizer`).
        loss_fn: ``loss_fn(output, x) -> mean loss per image`` (the seed's summed BCE, per image).
        batch_size: images per step.
        order: a CPU generator that draws the order of the images.
        regularizer: ``regularizer(model, x_in) -> penalty`` added to the loss.
        corruption: ``corruption(x, noise) -> x_tilde``, the inputs of a denoising autoencoder.
        noise: a CPU generator for the corruption.
        step: runs the passes (:class:`aelib.hooks.Step`: DDP, mixed precision); default plain.
        log: keeps the batch losses (:class:`aelib.hooks.EpochLog`: progress, NaN check).
    Returns:
        The mean training loss per image: the seed's ``Average training loss``.
    """
    step = step or Step(model)
    log = log or EpochLog(len(x), batch_size, x.device)
    model.train()
    perm = torch.randperm(len(x), generator=order).to(x.device)  # a new order every epoch
    for i, start in enumerate(range(0, len(x), batch_size)):
        xb = x[perm[start : start + batch_size]]  # a mini-batch of images (B, 784)
        x_in = xb if corruption is None else corruption(xb, noise)  # denoising: a noisy copy
        xb, x_in = step.share(xb, x_in)  # under DDP, this process's part of the batch
        optimizer.zero_grad(set_to_none=True)
        out = step.forward(x_in)  # model(x_in), in mixed precision if asked
        loss = loss_fn(out, xb)  # the seed's loss_function, divided by the batch size
        if regularizer is not None:
            loss = loss + regularizer(model, x_in)  # sparse or contractive penalty
        step.backward(loss, optimizer)  # loss.backward(); optimizer.step()
        log.record(i, loss)  # the seed's train_loss += loss.item(), without waiting for it
    return log.mean()  # the seed's train_loss / len(train_loader.dataset)


@torch.inference_mode()
def _evaluate(model: nn.Module, x: torch.Tensor, loss_fn: LossFn, batch_size: int) -> float:
    """The seed's ``test()``: the mean loss per image, in large batches, without autograd."""
    device = next(model.parameters()).device
    total = torch.zeros((), device=device)
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            total += loss_fn(model(xb), xb) * len(xb)
    return total.item() / len(x)


def evaluate(
    model: nn.Module, x: torch.Tensor, loss_fn: LossFn = bce_loss, batch_size: int = 4096
) -> float:
    """Mean per-image loss of ``model`` on ``x``, in large batches without autograd.

    Args:
        model: maps ``(B, 784)`` to logits ``(B, 784)``.
        x: images ``(N, 784)`` or ``(N, 1, 28, 28)``, uint8 or float in [0, 1].
        loss_fn: ``loss_fn(logits, x) -> mean loss over the batch``.
        batch_size: images per forward pass, at least 1.
    Returns:
        The loss averaged over all ``N`` images.
    Raises:
        ValueError: ``x`` is empty, not images, outside [0, 1] or not finite; a bad batch size.
    """
    check_positive_int("batch_size", batch_size)
    x = _check_images(x, "x", getattr(model, "input_dim", None))
    return _evaluate(model, x, loss_fn, batch_size)


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015), fused into one kernel where torch supports it.

    Args:
        model: the module whose parameters Adam updates (already on its device).
        lr: the learning rate eta, positive.
    Returns:
        A ``torch.optim.Adam`` with the default betas (0.9, 0.999) and eps 1e-8.
    """
    check_positive_number("lr", lr)
    device = next(model.parameters()).device
    try:
        fused = device.type in ("cpu", "cuda", "mps")
        return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def make_scaler(amp: bool, device: str | torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler that float16 mixed precision needs, or None where none is needed.

    ``amp`` runs float16 on CUDA and MPS, whose small range needs the loss scaled up before
    ``backward`` (Micikevicius et al. 2018); the CPU's bfloat16 has float32's range: needs none.

    Args:
        amp: whether training runs in mixed precision.
        device: where it runs.
    Returns:
        A ``torch.amp.GradScaler`` for ``device``, or None. Pass the same one to every ``fit``
        of a run (and save its ``state_dict()`` with the checkpoint) so a resumed run continues
        with its scale.
    """
    device = torch.device(device)
    return torch.amp.GradScaler(device.type) if amp and device.type in ("cuda", "mps") else None


@dataclass
class FitOptions:
    """How :func:`fit` checks a run and scales up: the rarely changed settings, in one place.

    Attributes:
        check_every: batches between the reads of the losses (progress bar and NaN check):
            reading a loss makes a GPU wait, so :func:`fit` reads rarely (chapter 5).
        divergence_factor: stop when two epochs in a row end with a training loss above this
            many times the first batch's loss; None turns the check off.
        fail_diverged_end: also stop when the last epoch of the call ends above
            ``divergence_factor`` times the first batch's loss (no epoch is left to recover
            in): a run of one epoch at a wild learning rate fails instead of returning a
            useless model. Off by default: chapter 5 shows such a run.
        amp: mixed precision for the forward pass (float16 with loss scaling on CUDA and MPS,
            bfloat16 on the CPU); the loss is still computed and reported in float32.
        compile_mode: ``None`` (eager), or a ``torch.compile`` mode such as ``"default"``.
        scaler: the loss scaler of a mixed-precision run (to resume one: pass the same one, or
            one restored from its ``state_dict``); default :func:`make_scaler`.
    """

    check_every: int = 50
    divergence_factor: float | None = 10.0
    fail_diverged_end: bool = False
    amp: bool = False
    compile_mode: str | None = None
    scaler: torch.amp.GradScaler | None = None


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor | None = None,
    *,
    # what to train, and how
    num_epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 42,
    loss_fn: LossFn = bce_loss,
    regularizer: Regularizer | None = None,
    corruption: Corruption | None = None,
    # another optimizer, or a run to continue
    optimizer: torch.optim.Optimizer | None = None,
    history: History | None = None,
    # what to show, and what to do after each epoch
    verbose: int = 2,
    on_epoch_end: Callable[[int, History], None] | None = None,
    # checks, and scaling up
    options: FitOptions | None = None,
) -> History:
    """Train ``model`` to reconstruct ``x_train`` with Adam; return the per-epoch losses.

    Each epoch is :func:`train_epoch` (then :func:`evaluate` on ``x_test``): each step minimises
    ``loss_fn(model(x_in), x) + regularizer(model, x_in)`` averaged over the images of a batch,
    where ``x_in = corruption(x, noise)`` (denoising) or ``x`` itself. Adam is invariant to the
    scale of the loss (up to its ``eps``), so this takes the seed's steps for every full batch; the
    shorter last batch of an epoch gets a relatively smaller gradient in the seed's summed loop
    (under 1 % in test loss after three epochs, chapter 1).

    Randomness: each epoch draws from CPU generators seeded by ``(seed, epoch)``
    (:func:`epoch_streams`), one stream each for the order of the images, the corruptions and
    the global generator (a VAE's samples), and moves the numbers to the device; so runs repeat
    exactly, a seed gives the same draws on every device, resumed runs match, and the caller's
    random state is restored after. To resume, pass the restored ``optimizer`` and ``history``
    (and ``options.scaler``): training continues at epoch ``len(history) + 1`` and stops after
    epoch ``num_epochs`` (a total).

    It trains where the model is: move the model first (``model.to(aelib.pick_device())``); the
    data follow it. Under ``torch.distributed`` (``torchrun``), each process takes its share of
    every global batch of ``batch_size`` images, DDP averages the gradients, and the reported
    training loss is that of the whole batch; a model on ``"cuda"`` without an index trains on
    the process's ``LOCAL_RANK`` GPU, and only rank 0 shows progress and prints.

    Args:
        model: an autoencoder returning logits ``(B, 784)`` for inputs ``(B, 784)``.
        x_train: training images ``(N, 1, 28, 28)`` uint8 or ``(N, 784)`` float in [0, 1].
        x_test: test images, evaluated after every epoch (optional).
        num_epochs: the epoch to stop after.
        batch_size: images per step, over all processes (the last batch may be smaller).
        lr: Adam's learning rate (ignored when ``optimizer`` is given).
        seed: seeds each epoch's random streams.
        loss_fn: ``loss_fn(model_output, x) -> scalar``, default the seed's BCE on logits (use
            :func:`aelib.losses.negative_elbo` for a VAE).
        regularizer: ``regularizer(model, x_in) -> penalty`` added to the training loss (see
            :mod:`aelib.regularizers`); the training loss reported includes it, the test loss not.
        corruption: ``corruption(x, generator) -> x_tilde`` applied to training inputs only.
        optimizer: an optimizer over ``model``'s parameters; default :func:`make_optimizer`.
        history: losses of the epochs already done (to resume); default a new :class:`History`.
        verbose: 2 prints the seed's per-epoch lines (``====> Epoch: N Average training loss:
            X``) under a progress bar, 1 the lines alone, 0 nothing.
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after each epoch.
        options: how often to check the loss, when to stop a diverging run, mixed precision,
            ``torch.compile`` and the loss scaler (:class:`FitOptions`); default
            ``FitOptions()``.
    Returns:
        The :class:`History`, extended by the epochs run.
    Raises:
        NonFiniteLossError: a batch loss was NaN or infinite; names the epoch and batch.
        LossDivergedError: the loss exploded (see :class:`FitOptions`); names the epoch.
        ValueError, TypeError: a bad argument; the message names it.
    """
    options = options if options is not None else FitOptions()
    _check_settings(model, num_epochs, batch_size, seed, verbose, options)
    seed = resolve_seed(seed)  # $AELIB_SEED_OFFSET shifts it, once, here
    device = local_device(_device_of(model))
    model.to(device)
    input_dim = getattr(model, "input_dim", None)
    x = _check_images(x_train, "x_train", input_dim).to(device)
    x_eval = _check_images(x_test, "x_test", input_dim).to(device) if x_test is not None else None
    shard = Shard.current()
    if shard.world > 1 and regularizer is not None:
        raise ValueError(
            "regularizers call the model outside DistributedDataParallel's forward; "
            "train regularized models in one process"
        )
    optimizer = optimizer or make_optimizer(model, lr)
    scaler = options.scaler if options.scaler is not None else make_scaler(options.amp, device)
    step = Step(model, device, shard, options.amp, scaler, options.compile_mode)
    history = history if history is not None else History()
    show = shard.rank == 0
    for epoch in range(len(history) + 1, num_epochs + 1):
        start_time = time.perf_counter()
        with preserved_random_states():
            order, noise, global_seed = epoch_streams(seed, epoch, shard.rank)
            _seed_global(global_seed, device)  # a VAE's eps: a stream of its own per process
            bar = tqdm(
                total=-(-len(x) // batch_size),
                desc=f"epoch {epoch}/{num_epochs}",
                disable=not (verbose >= 2 and show),
                leave=False,
            )
            log = EpochLog(len(x), batch_size, device, shard, epoch, bar, options.check_every)
            with torch.enable_grad():  # training works even when called under torch.no_grad()
                train_loss = train_epoch(
                    model,
                    x,
                    optimizer,
                    loss_fn,
                    batch_size=batch_size,
                    order=order,
                    regularizer=regularizer,
                    corruption=corruption,
                    noise=noise,
                    step=step,
                    log=log,
                )
            bar.close()
            history.train_loss.append(train_loss)
            if x_eval is not None:
                history.test_loss.append(_evaluate(model, x_eval, loss_fn, 4096))
        history.epoch_seconds.append(time.perf_counter() - start_time)
        if history.first_batch_loss is None:
            history.first_batch_loss = log.first_loss
        if verbose and show:
            tqdm.write(f"====> Epoch: {epoch} Average training loss: {history.train_loss[-1]:.4f}")
            if x_eval is not None:
                tqdm.write(f"====> Test set loss: {history.test_loss[-1]:.4f}")
        last = epoch == num_epochs and options.fail_diverged_end
        _check_divergence(history, epoch, options.divergence_factor, optimizer, last)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history


def epoch_order(seed: int, epoch: int) -> torch.Generator:
    """The generator :func:`fit` shuffles epoch ``epoch`` with: a loop written out by hand that
    draws its order from it visits the images in ``fit``'s order.

    Args:
        seed: the seed given to :func:`fit` (shifted by ``$AELIB_SEED_OFFSET`` here, as there).
        epoch: counted from 1.
    Returns:
        A CPU generator for ``torch.randperm(len(x), generator=...)``.
    """
    return epoch_streams(resolve_seed(seed), epoch)[0]


def epoch_streams(
    seed: int, epoch: int, rank: int = 0
) -> tuple[torch.Generator, torch.Generator, int]:
    """The random streams of one epoch of :func:`fit`, apart from every other (seed, epoch).

    Args:
        seed: the run's seed, already shifted by ``$AELIB_SEED_OFFSET``.
        epoch: counted from 1.
        rank: the process under DDP (0 for one process).
    Returns:
        ``(order, noise, global_seed)``: a CPU generator for the order of the images (the same
        in every process), one for the corruptions, and the seed of the global generators
        (a VAE's samples; one stream per process).
    """
    order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    noise = torch.Generator().manual_seed(_stream_seed(seed, epoch, 1))
    return order, noise, _stream_seed(seed, epoch, 2 + rank)


def _check_divergence(
    history: History,
    epoch: int,
    factor: float | None,
    optimizer: torch.optim.Optimizer,
    last: bool = False,
) -> None:
    """Raise :class:`LossDivergedError` if this epoch and the one before exploded.

    One wild epoch can recover (Adam with a large rate often does, as in chapter 5); two in a
    row, each above ``factor`` times the untrained network's loss, mean the run is lost. With
    ``last``, this epoch alone decides: no epoch is left to recover in.
    """
    first = history.first_batch_loss
    if factor is None or first is None or not first > 0:
        return
    now = history.train_loss[-1]
    lr = optimizer.param_groups[0].get("lr")
    hint = f" (it is {lr:g}: try {lr / 10:g})" if isinstance(lr, (int, float)) else ""
    if len(history) >= 2 and min(history.train_loss[-2], now) > factor * first:
        before = history.train_loss[-2]
        raise LossDivergedError(
            f"the training loss diverged: {now:.4g} per image at epoch {epoch} after {before:.4g} "
            f"at epoch {epoch - 1}, more than {factor:g} times the first batch's {first:.4g}; "
            f"lower the learning rate{hint}"
        )
    if last and not now <= factor * first:
        raise LossDivergedError(
            f"the training loss diverged: {now:.4g} per image at epoch {epoch}, the last, more "
            f"than {factor:g} times the first batch's {first:.4g}; lower the learning rate{hint}"
        )


def _check_settings(
    model: nn.Module, num_epochs, batch_size, seed, verbose, options: FitOptions
) -> None:
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be a non-negative integer, got {num_epochs!r}")
    check_positive_int("batch_size", batch_size)
    if verbose not in (0, 1, 2) or not isinstance(verbose, (int, bool)):
        raise ValueError(
            f"verbose must be 0 (silent), 1 (a line per epoch) or 2 (and a progress bar), "
            f"got {verbose!r}"
        )
    if not isinstance(options, FitOptions):
        raise TypeError(f"options must be an aelib.FitOptions, got {type(options).__name__}")
    check_positive_int("check_every", options.check_every)
    factor = options.divergence_factor
    if factor is not None and not (
        isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 1
    ):
        raise ValueError(f"divergence_factor must be above 1 (or None), got {factor!r}")
    if resolve_seed(seed) * 1_000_003 + num_epochs > MAX_SEED:  # see epoch_streams
        raise ValueError(
            f"seed must be below {MAX_SEED // 1_000_003:,} for fit (it seeds epoch e's order "
            f"with seed * 1,000,003 + e), got {seed!r}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"fit trains float32 models (mixed precision comes from FitOptions(amp=True)); this "
            f"model's parameters are {', '.join(sorted(map(str, dtypes))) or 'none'}: call "
            "model.float() first"
        )


def _check_images(x: torch.Tensor, name: str, input_dim: int | None) -> torch.Tensor:
    """``x`` as float32 ``(N, d)`` after checking it is a non-empty batch of finite pixels."""
    is_uint8 = isinstance(x, torch.Tensor) and x.dtype == torch.uint8
    x = image_batch(x, input_dim, name).float()
    if not is_uint8:  # 0-255 scaled to [0, 1]: in range by construction
        low, high = torch.aminmax(x)  # one pass; NaN propagates and fails both comparisons
        if not (low >= 0 and high <= 1):
            raise ValueError(
                f"{name} must hold finite pixel values in [0, 1] (or uint8 0-255); "
                f"got range [{low.item():.3g}, {high.item():.3g}]"
            )
    return x


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _seed_global(seed: int, device: torch.device) -> None:
    """Seed the CPU's global generator, and the training device's where it has its own."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def _stream_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream of one epoch, apart from every other (seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])
