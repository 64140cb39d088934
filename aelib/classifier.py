"""A small digit classifier: a yardstick for decoded images, and a network whose features we read.

Chapters use it three ways: to score whether an interpolated or sampled image looks like a digit
(the confidence of its prediction), to check which class a decoding resembles, and (chapter 9) as
the trained network whose hidden activations a sparse autoencoder explains. A one-hidden-layer
MLP, 784-256-10 with ReLU, trained with cross-entropy and Adam: the simplest network that is a
fair judge of 28x28 digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .images import to_float
from .utils import eval_mode, generator, pick_device, resolve_seed


class DigitClassifier(nn.Module):
    """``x -> h = relu(W1 x + b1) -> logits = W2 h + b2``, 784-256-10.

    Args:
        input_dim: pixels per image.
        hidden_dim: width of the hidden layer, whose activations :meth:`features` returns.
        num_classes: number of classes.
    """

    def __init__(self, input_dim: int = 784, hidden_dim: int = 256, num_classes: int = 10):
        super().__init__()
        self.input_dim, self.hidden_dim, self.num_classes = input_dim, hidden_dim, num_classes
        self.hidden = nn.Linear(input_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU activations. Args: x ``(B, 784)`` or ``(B, 1, 28, 28)``. Returns: ``(B, 256)``."""
        return F.relu(self.hidden(x.reshape(len(x), self.input_dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits. Args: x ``(B, 784)`` or ``(B, 1, 28, 28)`` in [0, 1]. Returns: ``(B, 10)``."""
        return self.head(self.features(x))


def _check_labels(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"y must be integer class labels, one per image ({len(x)},), "
            f"got {y.dtype} of shape {tuple(y.shape)}"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    return y.long()


def train_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    hidden_dim: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with cross-entropy and Adam; return it in eval mode.

    The initial weights and the order of the images come from ``seed`` (the global random state is
    left as it was), so a seed gives the same classifier run after run.

    Args:
        x: images ``(N, 1, 28, 28)`` uint8 or ``(N, 784)`` floats in [0, 1].
        y: labels ``(N,)``, integers in 0..9.
        num_epochs: passes over the data.
        batch_size: images per Adam step.
        lr: Adam's learning rate.
        hidden_dim: width of the hidden layer.
        seed: seeds the initial weights and the order of the images.
        device: where to train.
        progress: show a progress bar over the epochs.
    Returns:
        The trained classifier, on ``device``, in eval mode.
    """
    if len(x) == 0:
        raise ValueError("train_classifier needs at least one image, got an empty tensor")
    x = to_float(x).reshape(len(x), -1)
    y = _check_labels(x, y, 10)
    device = pick_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(resolve_seed(seed))
        model = DigitClassifier(input_dim=x.shape[1], hidden_dim=hidden_dim)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = generator(seed)
    x, y = x.to(device), y.to(device)
    model.train()
    for _ in tqdm(range(num_epochs), desc="classifier", disable=not progress, leave=False):
        perm = torch.randperm(len(x), generator=order).to(device)
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict_proba(model: DigitClassifier, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Class probabilities of images. Args: x ``(B, 1, 28, 28)``, ``(B, 28, 28)`` or ``(B, 784)``
    (uint8 or floats in [0, 1]). Returns: ``(B, 10)`` on the CPU, rows summing to 1."""
    device = next(model.parameters()).device
    x = to_float(x).reshape(len(x), -1)
    with eval_mode(model):
        parts = [
            F.softmax(model(x[i : i + batch_size].to(device)), dim=1).cpu()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(parts) if parts else torch.empty(0, model.num_classes)


def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images whose most probable class is the label. Args: x images, y ``(B,)``."""
    y = _check_labels(x, y, model.num_classes)
    return (predict_proba(model, x).argmax(dim=1) == y.cpu()).float().mean().item()
