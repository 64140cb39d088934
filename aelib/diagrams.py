"""Drawings for the book: the encoder-bottleneck-decoder picture of an autoencoder.

The seed's network (784 -> 400 -> 20 -> 400 -> 784) is the default; any symmetric list of
layer widths works, so later chapters can draw deeper or narrower models with the same call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

SEED_LAYERS = (784, 400, 20, 400, 784)
_COLORS = {"input": "#cfe2f3", "hidden": "#eeeeee", "code": "#f9cb9c", "output": "#d9ead3"}


def _layer_names(n_layers: int) -> list[str]:
    """Math labels x, h (or h_1, h_2...), z, h' ..., x_hat for ``n_layers`` widths."""
    k = (n_layers - 3) // 2
    hidden = ["h"] if k == 1 else [f"h_{i}" for i in range(1, k + 1)]
    decoder_hidden = [f"{name}'" for name in reversed(hidden)]
    return ["x", *hidden, "z", *decoder_hidden, r"\hat{x}"]


def _default_activations(n_layers: int) -> list[str]:
    """The seed's choice: ReLU after hidden layers, a linear code, a sigmoid output."""
    middle = n_layers // 2
    labels = []
    for i in range(1, n_layers):
        if i == middle:
            labels.append("Linear")
        elif i == n_layers - 1:
            labels.append("Linear\n+ sigmoid")
        else:
            labels.append("Linear\n+ ReLU")
    return labels


def architecture_diagram(
    layer_sizes: Sequence[int] = SEED_LAYERS,
    *,
    activations: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Draw an autoencoder as boxes whose heights grow with the layer widths.

    Args:
        layer_sizes: widths from input to output, an odd count >= 3 with the code in the middle,
            e.g. the seed's ``(784, 400, 20, 400, 784)``.
        activations: one label per arrow (``len(layer_sizes) - 1``); default the seed's
            ReLU / linear code / sigmoid output.
        ax: axes to draw on; default a new figure.
        path: also save a PNG there.
    Returns:
        The figure; texts include ``$x$``, ``$z$``, ``$\\hat{x}$``, the widths, "encoder",
        "decoder".
    """
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 3 or len(sizes) % 2 == 0 or min(sizes) < 1:
        raise ValueError(
            f"layer_sizes must be an odd number (>= 3) of positive widths with the code "
            f"in the middle, e.g. (784, 400, 20, 400, 784); got {tuple(layer_sizes)}"
        )
    labels = list(activations) if activations is not None else _default_activations(len(sizes))
    if len(labels) != len(sizes) - 1:
        raise ValueError(
            f"need one activation label per arrow ({len(sizes) - 1}), got {len(labels)}"
        )
    names = _layer_names(len(sizes))
    middle = len(sizes) // 2
    if ax is None:
        _, ax = plt.subplots(figsize=(2.1 * len(sizes) + 0.6, 4.6))
    fig = ax.figure

    heights = [0.6 + 2.4 * math.log(s) / math.log(max(sizes + [2])) for s in sizes]
    xs = [2.1 * i for i in range(len(sizes))]
    _draw_layers(ax, xs, heights, sizes, names, middle)
    _draw_arrows(ax, xs, labels)
    top = _draw_braces(ax, xs, heights, middle)

    ax.set_xlim(xs[0] - 0.9, xs[-1] + 0.9)
    ax.set_ylim(-max(heights) / 2 - 1.1, top + 0.75)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if path is not None:
        fig.savefig(path, dpi=200, bbox_inches="tight", metadata={"Software": None})
    return fig


_BOX_WIDTH = 0.9


def _draw_layers(
    ax: plt.Axes,
    xs: list[float],
    heights: list[float],
    sizes: list[int],
    names: list[str],
    middle: int,
) -> None:
    """One rounded box per layer, with its symbol inside and its width below."""
    for i, (x, h, size, name) in enumerate(zip(xs, heights, sizes, names)):
        kind = (
            "input"
            if i == 0
            else "output"
            if i == len(sizes) - 1
            else "code"
            if i == middle
            else "hidden"
        )
        ax.add_patch(
            FancyBboxPatch(
                (x - _BOX_WIDTH / 2, -h / 2),
                _BOX_WIDTH,
                h,
                boxstyle="round,pad=0.04",
                facecolor=_COLORS[kind],
                edgecolor="#333333",
                linewidth=1.2,
            )
        )
        ax.text(x, 0, f"${name}$", ha="center", va="center", fontsize=17)
        ax.text(x, -h / 2 - 0.22, f"{size}", ha="center", va="top", fontsize=11)
    for x, h, text in (
        (xs[middle], heights[middle], "bottleneck\n(code)"),
        (xs[0], heights[0], "input"),
        (xs[-1], heights[-1], "reconstruction"),
    ):
        ax.text(x, -h / 2 - 0.62, text, ha="center", va="top", fontsize=10, style="italic")


def _draw_arrows(ax: plt.Axes, xs: list[float], labels: list[str]) -> None:
    """An arrow between neighbouring boxes, labelled with the layer's operation."""
    for i, label in enumerate(labels):
        start, end = xs[i] + _BOX_WIDTH / 2 + 0.05, xs[i + 1] - _BOX_WIDTH / 2 - 0.05
        ax.add_patch(
            FancyArrowPatch(
                (start, 0),
                (end, 0),
                arrowstyle="-|>",
                mutation_scale=14,
                color="#333333",
                linewidth=1.2,
            )
        )
        ax.text((start + end) / 2, 0.14, label, ha="center", va="bottom", fontsize=8.5)


def _draw_braces(ax: plt.Axes, xs: list[float], heights: list[float], middle: int) -> float:
    """Brackets over the encoder and the decoder halves; returns their height."""
    top = max(heights) / 2 + 0.35
    for (first, last), text in (
        ((0, middle), r"encoder $z = f_\theta(x)$"),
        ((middle, len(xs) - 1), r"decoder $\hat{x} = g_\phi(z)$"),
    ):
        left = xs[middle] + 0.08 if first == middle else xs[first] - _BOX_WIDTH / 2
        right = xs[middle] - 0.08 if last == middle else xs[last] + _BOX_WIDTH / 2
        ax.annotate(
            "",
            xy=(left, top),
            xytext=(right, top),
            arrowprops={
                "arrowstyle": "|-|, widthA=0.25, widthB=0.25",
                "color": "#555555",
                "linewidth": 1.0,
            },
        )
        ax.text(
            (xs[first] + xs[last]) / 2, top + 0.12, text, ha="center", va="bottom", fontsize=13
        )
    return top
