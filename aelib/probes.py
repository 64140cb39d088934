"""How good are codes as features? A linear probe with few labels, and nearest-neighbour retrieval.

A linear probe fits logistic regression on frozen codes and reports test accuracy (the protocol of
He et al. 2022, sec. 4, and of much representation learning since); the codes are standardised
first with the labelled images' mean and spread. Retrieval: precision@k is the share of an image's
``k`` nearest neighbours in code space (Euclidean) that have its label.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .evidence import stratified


def few_labels(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` labelled examples, ``n / C`` of each of the ``C`` classes, drawn at random.

    Args:
        y: labels ``(N,)``, integers ``0 .. C-1``.
        n: how many, a multiple of ``C``.
        seed: seeds the draw.
    Returns:
        Sorted indices ``(n,)``.
    """
    classes = int(y.max()) + 1
    if n % classes:
        raise ValueError(f"n must be a multiple of the {classes} classes, got {n}")
    missing = sorted(set(range(classes)) - set(torch.unique(y).tolist()))
    if missing:
        raise ValueError(f"class {missing[0]} has 0 examples, fewer than {n // classes}")
    return stratified(y, n // classes, seed).sort().values


def linear_probe(
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    z_test: torch.Tensor,
    y_test: torch.Tensor,
    c: float = 1.0,
) -> float:
    """Test accuracy of logistic regression on standardised codes.

    Args:
        z_train: codes of the labelled examples ``(n, m)``.
        y_train: their labels ``(n,)``.
        z_test: codes of the test examples ``(N, m)``.
        y_test: their labels ``(N,)``.
        c: inverse L2 strength (scikit-learn's ``C``).
    Returns:
        The share of test examples classified right.
    """
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(
            f"train and test codes differ in size: {z_train.shape[1]} and {z_test.shape[1]}"
        )
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    probe.fit(_numpy(z_train), _numpy(y_train))
    return float((probe.predict(_numpy(z_test)) == _numpy(y_test)).mean())


def precision_at_k(
    z_query: torch.Tensor,
    y_query: torch.Tensor,
    z_base: torch.Tensor,
    y_base: torch.Tensor,
    k: int = 10,
) -> float:
    """Mean share of each query's ``k`` nearest base codes (Euclidean) with the query's label.

    Args:
        z_query: codes ``(Q, m)``; y_query: labels ``(Q,)``.
        z_base: the codes searched ``(N, m)`` (not containing the queries); y_base: ``(N,)``.
        k: neighbours per query.
    Returns:
        precision@k, in [0, 1].
    """
    dist = torch.cdist(z_query.double(), z_base.double())  # (Q, N)
    nearest = dist.topk(k, dim=1, largest=False).indices  # (Q, k)
    return (y_base[nearest] == y_query[:, None]).float().mean().item()


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
