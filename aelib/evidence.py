"""Fair samples and seed spread: what an ``assert`` needs before it backs a claim.

The data splits are sorted by class, so ``x_test[:10]`` is ten zeros. Draw samples with
:func:`stratified` (so many of each class, interleaved) or :func:`shuffled` instead. A sentence
that ranks or sizes an effect is measured over several seeds, the same seeds for every arm, and
summarised by :class:`Spread`: print it, then assert the direction with a margin from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .utils import check_positive_int, generator


def stratified(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` random examples of each class, interleaved by class.

    The first ``C`` indices hold one example of each of the ``C`` classes, the next ``C`` another,
    and so on: any prefix of ``k * C`` indices is itself stratified.

    Args:
        labels: ``(N,)`` integer labels ``0 .. C-1``.
        per_class: how many of each class.
        seed: seeds the draw (shifted by ``$AELIB_SEED_OFFSET``).
    Returns:
        ``(per_class * C,)`` indices into ``labels``.
    """
    labels = torch.as_tensor(labels).cpu()
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(
            f"labels must be a 1-D integer tensor, got {tuple(labels.shape)} {labels.dtype}"
        )
    check_positive_int("per_class", per_class)
    g = generator(seed)
    picks = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(
                f"class {c} has {len(idx)} examples, fewer than per_class={per_class}"
            )
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.stack(picks, dim=1).flatten()  # (per_class, C) read row by row


def shuffled(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """``k`` distinct random indices out of ``range(n)``.

    Args:
        n: how many there are.
        k: how many to draw, at most ``n``.
        seed: seeds the draw (shifted by ``$AELIB_SEED_OFFSET``).
    Returns:
        ``(k,)`` indices, in random order.
    """
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n={n}], got {k}")
    return torch.randperm(n, generator=generator(seed))[:k]


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation, minimum and maximum of one number over seeds.

    Build it with :meth:`of`; ``str(spread)`` reads ``"91.2 ± 0.4 (90.8 to 91.6, 3 seeds)"``.
    """

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float | torch.Tensor]) -> Spread:
        """The spread of ``values`` (at least two; tensors are read with ``float``)."""
        values = tuple(float(v) for v in values)
        if len(values) < 2:
            raise ValueError(f"a spread needs at least two values, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"a spread needs finite values, got {values}")
        return cls(values)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def format(self, spec: str = ".3g") -> str:
        """``"mean ± std (min to max, n seeds)"`` with each number formatted by ``spec``."""
        m, s, lo, hi = (format(v, spec) for v in (self.mean, self.std, self.min, self.max))
        return f"{m} ± {s} ({lo} to {hi}, {self.n} seeds)"

    def __str__(self) -> str:
        return self.format()


def paired(a: Iterable[float | torch.Tensor], b: Iterable[float | torch.Tensor]) -> Spread:
    """The spread of ``a[i] - b[i]``: two arms compared seed by seed (the same seed per pair).

    Args:
        a: one arm's number per seed.
        b: the other arm's, on the same seeds in the same order.
    Returns:
        The :class:`Spread` of the differences.
    """
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b):
        raise ValueError(f"paired arms need one value per seed each, got {len(a)} and {len(b)}")
    return Spread.of(x - y for x, y in zip(a, b, strict=True))
