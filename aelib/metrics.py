"""Measuring what an autoencoder is used for: image quality, compression, anomaly scores.

PSNR is the usual denoising figure of merit (book: eq. ``06-psnr``). Anomaly detection scores
each input by its reconstruction error and is judged by the ROC curve and its area (AUC), computed
with scikit-learn (``sklearn.metrics.roc_curve``, ``roc_auc_score``); Goodfellow et al. (2016),
*Deep Learning*, ch. 14, https://www.deeplearningbook.org/. SSIM is left out: no library already
required by the book provides it.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import precision_score, recall_score, roc_auc_score, roc_curve
from torch import nn
from torch.nn import functional as F

from .images import check_finite, to_float
from .models import to_pixels
from .utils import check_positive_int, eval_mode

# --- image quality ----------------------------------------------------------------------------


def psnr(x_hat: torch.Tensor, x: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, ``10 log10(max_val^2 / MSE)`` in decibels.

    Prediction first, then the reference, as every loss and metric in aelib.

    Args:
        x_hat: approximations ``(B, ...)`` (for example ``(B, 784)`` or ``(B, 1, 28, 28)``), float.
        x: reference images of the same shape.
        max_val: the largest possible pixel value (1 for images in [0, 1], 255 for uint8 scale).
    Returns:
        ``(B,)``: one PSNR per image (``inf`` where ``x_hat == x`` exactly).
    """
    if x.shape != x_hat.shape or x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"expected two non-empty batches of the same shape (B, ...), got "
            f"{tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    if not (x.is_floating_point() and x_hat.is_floating_point()):
        raise ValueError(
            f"expected float images, got dtypes {x.dtype} and {x_hat.dtype}; "
            "convert uint8 images with aelib.to_float(x)"
        )
    if not max_val > 0:
        raise ValueError(f"max_val must be positive, got {max_val!r}")
    mse = (x - x_hat).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(max_val**2 / mse)


# --- reconstruction errors as anomaly scores --------------------------------------------------


@torch.inference_mode()
def reconstruction_errors(
    model: nn.Module,
    x: torch.Tensor,
    loss: str = "bce",
    output: str | None = None,
    batch_size: int = 1024,
) -> torch.Tensor:
    """The reconstruction loss of every input, summed over its features: the anomaly score.

    The reconstruction is ``model.decode(model.encode(x))`` (for a VAE: the decoded mean code, no
    sampling), evaluated in eval mode and without autograd.

    Args:
        model: has ``encode`` and ``decode`` (:class:`aelib.Autoencoder`, VAE, conv AE).
        x: inputs ``(N, d)`` or images ``(N, 1, 28, 28)``, uint8 or float.
        loss: ``"bce"`` (binary cross-entropy from logits, targets in [0, 1]) or ``"mse"``
            (squared error).
        output: what the decoder returns: ``"logits"`` (a sigmoid gives the reconstruction; models
            trained with :func:`aelib.bce_loss`) or ``"values"`` (the reconstruction itself; models
            trained with :func:`aelib.mse_loss`). ``"bce"`` needs ``"logits"``. Default: the
            model's own ``output`` attribute (``"values"`` for :class:`aelib.LinearAutoencoder`),
            else ``"logits"``. Without ``output``, squared errors are taken of the model's own
            ``to_pixels`` (the helpers' one way from decoder outputs to pixels).
        batch_size: inputs per forward pass.
    Returns:
        ``(N,)`` float tensor on the CPU: one error per input.
    """
    own = output is None
    if own:
        output = getattr(model, "output", "logits")
    if loss not in ("bce", "mse"):
        raise ValueError(f"loss must be 'bce' or 'mse', got {loss!r}")
    if output not in ("logits", "values"):
        raise ValueError(f"output must be 'logits' or 'values', got {output!r}")
    if loss == "bce" and output != "logits":
        raise ValueError(
            f"loss='bce' is computed from logits but the output is {output!r}: pass "
            "output='logits', or loss='mse'"
        )
    x = check_finite(x, "x")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(
            f"expected a non-empty batch (N, d) or (N, 1, H, W), got {tuple(x.shape)}"
        )
    check_positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    x = to_float(x)
    errors = []
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            out = model.decode(model.encode(xb))
            if out.shape != xb.shape:
                raise ValueError(
                    f"the model reconstructs {tuple(out.shape)} from inputs {tuple(xb.shape)}"
                )
            if loss == "bce":
                err = F.binary_cross_entropy_with_logits(out, xb, reduction="none")
            elif own:
                err = (to_pixels(model, out) - xb).pow(2)
            else:
                err = ((torch.sigmoid(out) if output == "logits" else out) - xb).pow(2)
            errors.append(err.sum(dim=1).cpu())
    return torch.cat(errors)


def _scores(name: str, s) -> np.ndarray:
    s = np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scores, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds NaN or infinite scores")
    return s


def roc(
    scores_normal: torch.Tensor | np.ndarray, scores_anomalous: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve and its area for "the higher the score, the more anomalous".

    Args:
        scores_normal: scores of normal inputs ``(N0,)`` (tensor or array).
        scores_anomalous: scores of anomalies ``(N1,)``.
    Returns:
        ``(fpr, tpr, auc)``: false- and true-positive rates over all thresholds
        (``sklearn.metrics.roc_curve``) and the area under the curve (``roc_auc_score``): the
        probability that a random anomaly scores above a random normal input.
    """
    s0, s1 = _scores("scores_normal", scores_normal), _scores("scores_anomalous", scores_anomalous)
    y = np.r_[np.zeros(len(s0)), np.ones(len(s1))]
    s = np.r_[s0, s1]
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, float(roc_auc_score(y, s))


def threshold_at_percentile(train_scores: torch.Tensor | np.ndarray, q: float) -> float:
    """The ``q``-th percentile of the training scores (linear interpolation, as ``np.percentile``).

    Flagging scores above it marks about ``(100 - q)`` % of normal data as anomalous.

    Args:
        train_scores: scores of the (normal) training inputs ``(N,)``.
        q: percentile in [0, 100].
    Returns:
        The threshold.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must lie in [0, 100], got {q!r}")
    return float(np.percentile(_scores("train_scores", train_scores), q))


def precision_recall_at(
    threshold: float,
    scores_normal: torch.Tensor | np.ndarray,
    scores_anomalous: torch.Tensor | np.ndarray,
) -> tuple[float, float]:
    """Precision and recall of the rule "score > threshold means anomaly".

    Args:
        threshold: the decision threshold.
        scores_normal: scores of normal inputs ``(N0,)``.
        scores_anomalous: scores of anomalies ``(N1,)``.
    Returns:
        ``(precision, recall)``: the fraction of flagged inputs that are anomalies (0 when nothing
        is flagged, as scikit-learn's ``zero_division=0``) and the fraction of anomalies flagged.
    """
    s0, s1 = _scores("scores_normal", scores_normal), _scores("scores_anomalous", scores_anomalous)
    y = np.r_[np.zeros(len(s0)), np.ones(len(s1))]
    flagged = np.r_[s0, s1] > threshold
    precision = precision_score(y, flagged, zero_division=0)
    return float(precision), float(recall_score(y, flagged))


# --- compression ------------------------------------------------------------------------------


def bits_per_image(latent_dim: int, bits: int) -> int:
    """Size of one quantized code: ``latent_dim`` numbers of ``bits`` bits each.

    Args:
        latent_dim: the code size m.
        bits: bits per code number.
    Returns:
        ``latent_dim * bits``, the bits that store one image's code.
    """
    return check_positive_int("latent_dim", latent_dim) * check_positive_int("bits", bits)


def quantize(z: torch.Tensor, bits: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Uniform scalar quantization of each code coordinate to ``2**bits`` levels, then back.

    Coordinate ``j`` is clipped to ``[low_j, high_j]`` and rounded to the nearest of the levels
    ``low_j + k (high_j - low_j) / (2**bits - 1)``, ``k = 0 .. 2**bits - 1`` (book:
    ``06-quantize``).

    Args:
        z: codes ``(B, m)``.
        bits: bits per coordinate, at least 1.
        low: lower ends ``(m,)`` (for example the training codes' minimum).
        high: upper ends ``(m,)``, above ``low``.
    Returns:
        The dequantized codes ``(B, m)``: what a decoder gets after storage in ``m * bits`` bits.
    """
    check_positive_int("bits", bits)
    if z.dim() != 2 or low.shape != (z.shape[1],) or high.shape != (z.shape[1],):
        raise ValueError(
            f"expected codes (B, m) and ends (m,), got {tuple(z.shape)}, "
            f"{tuple(low.shape)} and {tuple(high.shape)}"
        )
    if not (high > low).all():
        raise ValueError("every high must exceed its low")
    levels = 2**bits - 1
    step = (high - low) / levels
    k = torch.round((z.clamp(low, high) - low) / step)
    return low + k * step


def png_sizes(x: torch.Tensor) -> np.ndarray:
    """Bytes of each image saved as an 8-bit greyscale PNG (lossless, PIL's ``optimize=True``).

    Args:
        x: images ``(N, 1, 28, 28)`` or ``(N, 28, 28)``, uint8.
    Returns:
        ``(N,)`` int array of file sizes in bytes.
    """
    if x.dtype != torch.uint8 or x.dim() not in (3, 4) or (x.dim() == 4 and x.shape[1] != 1):
        raise ValueError(
            f"expected uint8 images (N, 1, H, W) or (N, H, W), got {x.dtype} {tuple(x.shape)}"
        )
    sizes = []
    for image in x.reshape(len(x), *x.shape[-2:]).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        sizes.append(buffer.tell())
    return np.array(sizes)
