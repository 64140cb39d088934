"""Interactive views of a trained autoencoder (chapter 07), each with a static figure beside it.

A builder returns an :class:`Explorer`: the ipywidgets box to display and ``update``, the callback
its sliders call. ``update`` draws into the box's image and returns the pictures it drew, so the
callbacks can be driven and checked without a browser. The static figures compute the same
pictures over a grid of slider positions: they are what a reader of the HTML book sees without a
kernel. Needs ``ipywidgets`` (a requirement of the book, not of ``aelib`` itself).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F
from torchvision.utils import make_grid, save_image

from .images import one_image, to_float
from .inference import _codes, codes_to_images, decode_segment, denoise, interpolate
from .metrics import psnr
from .plotting import book_figsize, image_grid, latent_grid


@dataclass
class Explorer:
    """A widget and its callback.

    Attributes:
        widget: the box to display (sliders, image, caption).
        update: the callback; ``update(...)`` redraws ``image`` and returns the images drawn.
        image: the ``ipywidgets.Image`` that ``update`` draws into (PNG bytes).
        controls: the sliders by name; moving one calls ``update`` with the current values.
        caption: an ``ipywidgets.HTML`` line that ``update`` rewrites.
    """

    widget: widgets.Box
    update: Callable[..., torch.Tensor]
    image: widgets.Image
    controls: dict[str, widgets.ValueWidget] = field(default_factory=dict)
    caption: widgets.HTML | None = None


def to_png(rows: torch.Tensor, scale: int = 4, padding: int = 2) -> bytes:
    """PNG bytes of images laid out in rows, grey borders between them.

    Args:
        rows: ``(R, C, H, W)``, ``(C, H, W)`` for one row or ``(H, W)`` for one image; in [0, 1].
        scale: each pixel becomes ``scale x scale`` pixels (nearest neighbour).
        padding: grey pixels between images (before scaling).
    Returns:
        The PNG file's bytes (grey values stored as equal RGB channels).
    """
    if not 2 <= rows.dim() <= 4:
        shape = tuple(rows.shape)
        raise ValueError(f"expected images (R, C, H, W), (C, H, W) or (H, W), got {shape}")
    rows = rows.reshape((1,) * (4 - rows.dim()) + tuple(rows.shape))
    r, c, h, w = rows.shape
    images = rows.detach().cpu().float().clamp(0, 1).reshape(r * c, 1, h, w)
    if len(images) > 1:
        grid = make_grid(images, nrow=c, padding=padding, pad_value=0.5)  # (3, H', W')
    else:  # make_grid returns a single image without its border
        grid = F.pad(images[0].expand(3, h, w), (padding,) * 4, value=0.5)
    grid = grid.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    buffer = io.BytesIO()
    save_image(grid, buffer, format="PNG")
    return buffer.getvalue()


def _show(image: widgets.Image, rows: torch.Tensor, scale: int) -> None:
    """Draw ``rows`` into ``image`` at its natural width (a flex box would stretch it)."""
    png = to_png(rows, scale)
    image.value = png
    image.layout.width = f"{int.from_bytes(png[16:20], 'big')}px"  # the PNG header's width field


def _slider(
    description: str, value: float, low: float, high: float, step: float
) -> widgets.FloatSlider:
    return widgets.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=True,
        readout_format=".2f",
    )


def _wire(explorer: Explorer) -> Explorer:
    """Call ``update`` with the sliders' values now and whenever one moves."""
    names = list(explorer.controls)

    def on_change(_change) -> None:
        explorer.update(*(explorer.controls[n].value for n in names))

    for control in explorer.controls.values():
        control.observe(on_change, names="value")
    on_change(None)
    return explorer


# --- the explorers ---------------------------------------------------------------------------


def _rectangle(extent: float | Sequence[float]) -> tuple[float, float, float, float]:
    """``(z1_min, z1_max, z2_min, z2_max)`` from a half-width or from those four numbers."""
    if isinstance(extent, (int, float)):
        extent = (-extent, extent, -extent, extent)
    if len(extent) != 4:
        raise ValueError(
            f"extent must be a number or (z1_min, z1_max, z2_min, z2_max), got {extent!r}"
        )
    z1_min, z1_max, z2_min, z2_max = (float(v) for v in extent)
    if not (z1_min < z1_max and z2_min < z2_max):
        raise ValueError(f"extent must have z1_min < z1_max and z2_min < z2_max, got {extent!r}")
    return z1_min, z1_max, z2_min, z2_max


def latent_slider_explorer(
    model: nn.Module,
    extent: float | Sequence[float] = 3.0,
    step: float = 0.05,
    scale: int = 6,
    z0: tuple[float, float] | None = None,
) -> Explorer:
    """Two sliders set a code ``z = (z1, z2)``; the image shows ``sigmoid(g(z))``.

    Args:
        model: an autoencoder with ``latent_dim == 2``.
        extent: the sliders' range: a half-width ``e`` (both run over ``[-e, e]``) or
            ``(z1_min, z1_max, z2_min, z2_max)``.
        step: slider step.
        scale: display magnification.
        z0: the starting code; default the centre of the range.
    Returns:
        An :class:`Explorer` whose ``update(z1, z2)`` returns the decoded image ``(28, 28)``.
    """
    if getattr(model, "latent_dim", None) != 2:
        raise ValueError(
            "the latent slider explorer needs latent_dim=2, "
            f"got {getattr(model, 'latent_dim', None)!r}"
        )
    z1_min, z1_max, z2_min, z2_max = _rectangle(extent)
    if z0 is None:
        z0 = ((z1_min + z1_max) / 2, (z2_min + z2_max) / 2)
    controls = {
        "z1": _slider("z1", z0[0], z1_min, z1_max, step),
        "z2": _slider("z2", z0[1], z2_min, z2_max, step),
    }
    image, caption = widgets.Image(format="png"), widgets.HTML()

    def update(z1: float, z2: float) -> torch.Tensor:
        x_hat = codes_to_images(model, torch.tensor([[z1, z2]], dtype=torch.float32))[0]
        _show(image, x_hat, scale)
        caption.value = f"decoded from z = ({z1:.2f}, {z2:.2f})"
        return x_hat

    box = widgets.HBox([widgets.VBox(list(controls.values()) + [caption]), image])
    return _wire(Explorer(box, update, image, controls, caption))


def interpolation_explorer(
    model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, step: float = 0.05, scale: int = 6
) -> Explorer:
    """A slider ``t`` in [0, 1] walks from the code of ``x_a`` to the code of ``x_b``.

    The image shows the decoding of ``z(t)`` (left) beside the pixel cross-fade
    ``(1 - t) x_a + t x_b`` (right).

    Args:
        model: has ``encode`` and ``decode``.
        x_a: the start image ``(1, 784)`` or ``(1, 1, 28, 28)``.
        x_b: the end image.
        step: slider step.
        scale: display magnification.
    Returns:
        An :class:`Explorer` whose ``update(t)`` returns ``(2, 28, 28)``: decoding, cross-fade.
    """
    a, b = (
        to_float(one_image(x, name)).reshape(28, 28) for x, name in ((x_a, "x_a"), (x_b, "x_b"))
    )
    z_a, z_b = _codes(
        model, one_image(x_a, "x_a"), one_image(x_b, "x_b")
    )  # once: a move only decodes
    controls = {"t": _slider("t", 0.5, 0.0, 1.0, step)}
    image, caption = widgets.Image(format="png"), widgets.HTML()

    def update(t: float) -> torch.Tensor:
        pair = torch.stack([decode_segment(model, z_a, z_b, t)[0, 0], (1 - t) * a + t * b])
        _show(image, pair, scale)
        caption.value = f"t = {t:.2f}: decoder at z(t) (left), pixel cross-fade (right)"
        return pair

    box = widgets.VBox([controls["t"], image, caption])
    return _wire(Explorer(box, update, image, controls, caption))


def denoising_explorer(
    model: nn.Module,
    x: torch.Tensor,
    max_std: float = 0.6,
    step: float = 0.05,
    seed: int = 0,
    scale: int = 3,
    std0: float = 0.3,
) -> Explorer:
    """A slider sets the noise level sigma; rows show the clean, noisy and denoised images.

    Args:
        model: a denoising autoencoder (trained with ``fit(..., corruption=...)``).
        x: a few clean images ``(B, 784)`` or ``(B, 1, 28, 28)``.
        max_std: the slider's largest sigma.
        step: slider step.
        seed: seeds the noise (the same pattern at every sigma).
        scale: display magnification.
        std0: the starting sigma.
    Returns:
        An :class:`Explorer` whose ``update(std)`` returns ``(3, B, 28, 28)``: the clean,
        noisy and denoised rows.
    """
    clean = to_float(x).reshape(-1, 28, 28)
    controls = {"sigma": _slider("σ", std0, 0.0, max_std, step)}
    image, caption = widgets.Image(format="png"), widgets.HTML()

    def update(std: float) -> torch.Tensor:
        noisy, denoised = denoise(model, clean, std, seed)
        rows = torch.stack([clean, noisy, denoised])
        _show(image, rows, scale)
        before, after = psnr(noisy, clean).mean().item(), psnr(denoised, clean).mean().item()
        caption.value = (
            f"σ = {std:.2f}: rows clean, noisy, denoised; mean PSNR "
            f"{before:.1f} dB noisy, {after:.1f} dB denoised"
        )
        return rows

    box = widgets.VBox([controls["sigma"], image, caption])
    return _wire(Explorer(box, update, image, controls, caption))


# --- the static figures -----------------------------------------------------------------------


def decode_grid(
    model: nn.Module,
    extent: float | Sequence[float] = 3.0,
    n: int = 12,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Decodings over an ``n x n`` grid of a 2-D latent plane: every slider position at once.

    Args:
        model: an autoencoder with ``latent_dim == 2``.
        extent: a half-width ``e`` (square ``[-e, e]^2``) or ``(z1_min, z1_max, z2_min, z2_max)``.
        n: images per side.
        ax: axes to draw on; default a new figure.
        title: axes title.
    Returns:
        The figure (see :func:`aelib.plotting.latent_grid`).
    """
    z1_min, z1_max, z2_min, z2_max = _rectangle(extent)
    return latent_grid(model, (z1_min, z2_min), (z1_max, z2_max), n=n, ax=ax, title=title)


def interpolation_figure(
    model: nn.Module,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    steps: int = 9,
    title: str | None = None,
) -> Figure:
    """Two strips from ``x_a`` to ``x_b``: decodings of ``z(t)`` (top), pixel cross-fades (bottom).

    Args:
        model: has ``encode`` and ``decode``.
        x_a: the start image; x_b: the end image (one image each).
        steps: positions ``t = 0, 1/(steps-1), ..., 1``.
        title: axes title; default says which strip is which.
    Returns:
        The figure.
    """
    t = torch.linspace(0, 1, steps)
    a, b = (to_float(one_image(x, name)) for x, name in ((x_a, "x_a"), (x_b, "x_b")))
    fades = (1 - t[:, None]) * a + t[:, None] * b
    return image_grid(
        torch.cat([interpolate(model, x_a, x_b, t).reshape(steps, 784), fades]),
        nrow=steps,
        title=title or "decoder along z(t) (top), pixel cross-fade (bottom); t from 0 to 1",
    )


def denoising_figure(
    model: nn.Module, x: torch.Tensor, stds: Sequence[float], seed: int = 0
) -> Figure:
    """For each noise level, the noisy images above their denoised versions.

    Args:
        model: a denoising autoencoder.
        x: a few clean images ``(B, 784)`` or ``(B, 1, 28, 28)``.
        stds: the noise levels, one panel each.
        seed: seeds the noise (the same pattern at every level).
    Returns:
        The figure, at most :data:`aelib.plotting.BOOK_WIDTH` wide.
    """
    stds = list(stds)
    if not stds:
        raise ValueError("give at least one noise level")
    batch = len(x)
    figsize = book_figsize(1.6 * batch * len(stds) / 2 + 1, 2.2)
    fig, axes = plt.subplots(1, len(stds), figsize=figsize, squeeze=False)
    for ax, std in zip(axes[0], stds):
        noisy, denoised = denoise(model, x, std, seed)
        image_grid(torch.cat([noisy, denoised]), nrow=batch, ax=ax, title=f"σ = {std:g}")
    return fig
