"""PCA and the angles between subspaces (the linear autoencoder: :class:`aelib.LinearAutoencoder`).

A linear autoencoder trained with squared error spans the same subspace as the top principal
components: Bourlard & Kamp (1988), "Auto-association by multilayer perceptrons and singular value
decomposition", https://doi.org/10.1007/BF00332918; Baldi & Hornik (1989), "Neural networks and
principal component analysis: learning from examples without local minima",
https://doi.org/10.1016/0893-6080(89)90014-2. Principal angles follow Knyazev & Argentati (2002),
"Principal angles between subspaces in an A-based scalar product", https://doi.org/10.1137/S1064827500377332
(the algorithm of ``scipy.linalg.subspace_angles``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy.linalg import subspace_angles

from .images import check_tensor, rows


class PCA(NamedTuple):
    """The top principal components of a data set (book: eq. ``02-eckart-young``).

    Attributes:
        mean: the data mean, ``(d,)``.
        components: orthonormal principal directions as rows, ``(m, d)``, largest variance first.
        explained_variance: the variance along each direction, ``(m,)`` (divided by ``N - 1``).
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    output = "values"  # decode gives the reconstruction itself (see aelib.AutoencoderBase)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates along the components. Args: x ``(B, d)`` or images. Returns: ``(B, m)``."""
        return (rows(check_tensor(x, "x")) - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Back to pixel space. Args: z ``(B, m)``. Returns: ``(B, d)``."""
        return self.mean + z @ self.components

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """The decoding itself (PCA's decoder is linear: no sigmoid)."""
        return output

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection onto the affine PCA subspace, in the shape of ``x``."""
        return self.decode(self.encode(x)).reshape(x.shape)


def pca(x: torch.Tensor, m: int) -> PCA:
    """Principal component analysis by the SVD of the centred data (Pearson 1901).

    Args:
        x: data ``(N, d)`` or images ``(N, 1, 28, 28)`` (uint8 images are scaled to [0, 1]).
        m: how many components to keep, ``1 <= m <= min(N, d)``.
    Returns:
        A :class:`PCA` with ``mean (d,)``, ``components (m, d)`` and ``explained_variance (m,)``,
        in the dtype of ``x`` (float32 for uint8 images).
    """
    x = rows(check_tensor(x, "x"))
    n, d = x.shape
    if not isinstance(m, int) or not 1 <= m <= min(n, d):
        raise ValueError(
            f"m must be an integer in [1, {min(n, d)}] for data of shape {(n, d)}, got {m!r}"
        )
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return PCA(mean, vh[:m], s[:m] ** 2 / max(n - 1, 1))


def _matrix(a: torch.Tensor, name: str) -> np.ndarray:
    a = check_tensor(a, name)
    if a.dim() != 2:
        raise ValueError(
            f"expected {name} as a matrix (d, k) whose columns span a subspace, "
            f"got shape {tuple(a.shape)}"
        )
    return a.detach().double().cpu().numpy()


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles between the column spaces of ``a`` and ``b``, smallest first, in radians.

    Book: eq. ``02-principal-angles``. ``scipy.linalg.subspace_angles`` (Knyazev & Argentati
    2002): the cosines are the singular values of ``Q_a^T Q_b`` for orthonormal bases ``Q_a``,
    ``Q_b`` (dependent columns dropped); angles whose cosine is near 1 are taken from the sines,
    which stay accurate there.

    Args:
        a: ``(d, p)``; its columns span the first subspace (they need not be orthonormal).
        b: ``(d, q)``; its columns span the second subspace.
    Returns:
        float64 tensor (on the CPU) of ``min(rank a, rank b)`` angles in ``[0, pi/2]``, ascending.
    """
    a_np, b_np = _matrix(a, "a"), _matrix(b, "b")
    if a_np.shape[0] != b_np.shape[0]:
        raise ValueError(
            f"a and b must have the same number of rows, got {a_np.shape[0]} and {b_np.shape[0]}"
        )
    return torch.from_numpy(subspace_angles(a_np, b_np)[::-1].copy())  # scipy: largest first
