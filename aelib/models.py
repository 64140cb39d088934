"""The seed's fully connected autoencoder (784-400-20, ReLU, sigmoid output) and its relatives.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors";
Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks",
https://doi.org/10.1126/science.1127647
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .images import image_batch, to_float
from .utils import check_positive_int, draw


def flatten_images(
    x: torch.Tensor, input_dim: int, dtype: torch.dtype | None = None, name: str = "x"
) -> torch.Tensor:
    """``(B, input_dim)`` from ``(B, input_dim)`` or ``(B, 1, H, W)`` (:func:`image_batch`).

    uint8 images are scaled to [0, 1]; floats must be of ``dtype`` (the model's) when given.

    Raises:
        TypeError, ValueError: not a tensor, another shape, an empty batch, another dtype; the
            message names ``name`` and says what was expected.
    """
    return image_batch(x, input_dim, name, dtype)


def _dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype of a module's first parameter (the dtype its inputs must have)."""
    first = next(module.parameters(), None)
    return None if first is None else first.dtype


def _check_sizes(**sizes: int) -> None:
    """Raise a ValueError naming the first size that is not a positive integer."""
    for name, value in sizes.items():
        check_positive_int(name, value)


def check_codes(z: torch.Tensor, latent_dim: int, name: str = "z") -> torch.Tensor:
    """``z`` if it is a batch of codes ``(B, latent_dim)``; else an error naming ``name``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of codes, got {type(z).__name__}")
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"expected codes of shape (B, {latent_dim}), got {tuple(z.shape)}")
    return z


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The reparameterization trick ``z = mu + exp(logvar / 2) * eps`` (Kingma & Welling 2014,
    sec. 2.4; book: ``04-reparam``), differentiable in ``mu`` and ``logvar``.

    Args:
        mu: means ``(..., m)``.
        logvar: log-variances ``log sigma^2``, broadcastable with ``mu``.
        eps: standard normal draws, broadcastable with both (e.g. ``(k, B, m)``).
    Returns:
        ``z`` in the broadcast shape.
    """
    return mu + torch.exp(0.5 * logvar) * eps


def to_pixels(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """A decoder output as pixels: the model's own :meth:`to_pixels` (a sigmoid of logits for
    models trained with BCE, the values themselves for linear outputs), else a sigmoid."""
    own = getattr(model, "to_pixels", None)
    return own(output) if own is not None else torch.sigmoid(output)


class Standardize(nn.Module):
    """``(x - mean) / std``, fixed: the seed's ``transforms.Normalize((0.5,), (0.5,))``."""

    def __init__(self, mean: float = 0.5, std: float = 0.5):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class TiedLinear(nn.Module):
    """A linear map whose weight is the transpose of another layer's: ``W' = W^T`` (own bias)."""

    def __init__(self, tied_to: nn.Linear):
        super().__init__()
        self.tied_to = [tied_to]  # a list, so the shared weight is not registered twice
        self.bias = nn.Parameter(torch.zeros(tied_to.in_features))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.tied_to[0].weight.t(), self.bias)

    def extra_repr(self) -> str:
        w = self.tied_to[0].weight
        return f"in_features={w.shape[0]}, out_features={w.shape[1]}, tied"


class AutoencoderBase(nn.Module):
    """What every deterministic autoencoder here shares: the model contract of aelib.

    - ``encode(x)``: images ``(B, d)`` or ``(B, 1, H, W)`` (uint8 or floats) to codes ``(B, m)``;
    - ``decode(z)``: codes to the decoder's output ``(B, d)``: **logits** when ``output`` is
      ``"logits"`` (models trained with :func:`aelib.bce_loss`), the reconstruction itself when
      it is ``"values"`` (a linear output layer, :func:`aelib.mse_loss`);
    - ``to_pixels(out)``: that output as pixels (a sigmoid of logits, values as they are);
    - ``reconstruct(x)``: pixels ``to_pixels(decode(encode(x)))`` in the shape of ``x``.

    A subclass sets ``input_dim``, ``latent_dim``, ``encoder`` and ``decoder`` and defines
    :meth:`encode`; ``forward`` returns ``decode(encode(x))``, so :func:`aelib.fit` and the
    helpers of :mod:`aelib.inference` apply to every subclass.
    """

    input_dim: int
    latent_dim: int
    output = "logits"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code. Args: x ``(B, d)`` or ``(B, 1, H, W)``, in [0, 1]. Returns: ``(B, m)``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the reconstruction. Args: z ``(B, m)``. Returns: logits ``(B, d)``."""
        return self.decoder(check_codes(z, self.latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits. Args: x ``(B, d)`` or ``(B, 1, H, W)``. Returns: ``(B, d)``."""
        return self.decode(self.encode(x))

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """Pixels from a decoder output: ``sigmoid(output)`` (logits)."""
        return torch.sigmoid(output)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``x_hat = sigmoid(g(f(x)))`` in the shape of ``x``."""
        return self.to_pixels(self(x)).reshape(x.shape)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as rows ``(B, input_dim)`` in the model's dtype (uint8 scaled to [0, 1])."""
        return flatten_images(x, self.input_dim, _dtype(self))


class Autoencoder(AutoencoderBase):
    """Fully connected autoencoder ``x -> z = f(x) -> x_hat = sigmoid(g(z))``.

    With the defaults this is exactly the seed's network: 784-400-20 with ReLU, a linear code,
    400-784 back, 644,804 parameters, and the seed's input normalisation to [-1, 1].

    ``forward`` returns **logits**; the sigmoid of the seed's last layer is applied by
    :meth:`reconstruct` (for pictures) and folded into :func:`aelib.losses.bce_loss`, which is the
    numerically stable form of ``BCE(sigmoid(logits), x)``.

    Args:
        input_dim: pixels per image ``d``.
        hidden_dim: width of the hidden layer, or a sequence of widths for a deeper network
            (the decoder mirrors it).
        latent_dim: code size ``m``.
        tied: decoder weights are the transposed encoder weights (``W' = W^T``).
        normalize_input: feed ``(x - 0.5) / 0.5`` to the encoder, as the seed did.
        activation: ``"relu"``, ``"sigmoid"``, ``"tanh"`` or ``"linear"`` for the hidden layers.
        code_activation: the same choices for the code ``z`` (the seed's code is ``"linear"``; a
            sparse autoencoder with a KL penalty needs ``"sigmoid"``).
    """

    _ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity}

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dim: int | Sequence[int] = 400,
        latent_dim: int = 20,
        tied: bool = False,
        normalize_input: bool = True,
        activation: str = "relu",
        code_activation: str = "linear",
    ):
        super().__init__()
        for value in (activation, code_activation):
            if value not in self._ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {value!r}: choose one of {', '.join(self._ACTIVATIONS)}"
                )
        if isinstance(hidden_dim, (str, bytes)) or not isinstance(hidden_dim, (int, Sequence)):
            raise ValueError(
                f"hidden_dim must be a positive integer or a sequence of them, got {hidden_dim!r}"
            )
        hidden = [hidden_dim] if isinstance(hidden_dim, int) else list(hidden_dim)
        _check_sizes(
            input_dim=input_dim,
            latent_dim=latent_dim,
            **{f"hidden_dim[{i}]": h for i, h in enumerate(hidden)},
        )
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.config = {
            "input_dim": input_dim,
            "hidden_dim": hidden_dim if isinstance(hidden_dim, int) else hidden,
            "latent_dim": latent_dim,
            "tied": tied,
            "normalize_input": normalize_input,
            "activation": activation,
            "code_activation": code_activation,
        }
        act = self._ACTIVATIONS[activation]
        sizes = [input_dim, *hidden, latent_dim]
        enc: list[nn.Module] = [Standardize() if normalize_input else nn.Identity()]
        enc_linears = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            enc_linears.append(nn.Linear(a, b))
            enc.append(enc_linears[-1])
            if i < len(sizes) - 2:
                enc.append(act())
        if code_activation != "linear":
            enc.append(self._ACTIVATIONS[code_activation]())
        dec: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[::-1][:-1], sizes[::-1][1:])):
            dec.append(TiedLinear(enc_linears[-1 - i]) if tied else nn.Linear(a, b))
            if i < len(sizes) - 2:
                dec.append(act())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code. Args: x ``(B, 784)`` or ``(B, 1, 28, 28)`` in [0, 1]. Returns: ``(B, m)``."""
        return self.encoder(self._inputs(x))


class LinearAutoencoder(AutoencoderBase):
    """The linear autoencoder ``x_hat = c + W_dec (W_enc (x - c) + b_enc) + b_dec`` (d -> m -> d).

    Trained with squared error it finds the PCA subspace (Baldi & Hornik 1989). Unlike
    :class:`aelib.Autoencoder`, whose outputs are logits, its outputs are the reconstructions
    themselves (``output = "values"``): train it with :func:`aelib.mse_loss`; :meth:`to_pixels`
    and :meth:`reconstruct` apply no sigmoid. Logits would make it another model: with a sigmoid
    link and BCE the same maps end far from PCA's subspace (median principal angle 36 degrees
    against 0.27, three seeds, ``benchmarks/linear_output_link.py``).

    Args:
        input_dim: ``d``, values per input.
        latent_dim: ``m``, the code size (``m < d`` is undercomplete, ``m >= d`` overcomplete).
        bias: give both maps a bias.
        center: a fixed ``(d,)`` vector ``c`` (usually the training mean) subtracted before
            encoding and added back after decoding; default zeros. Centring changes no reachable
            function when ``bias`` is on, but it makes gradient descent far better conditioned.
    """

    output = "values"

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 20,
        bias: bool = True,
        center: torch.Tensor | None = None,
    ):
        super().__init__()
        _check_sizes(input_dim=input_dim, latent_dim=latent_dim)
        center = (
            torch.zeros(input_dim)
            if center is None
            else to_float(center.detach().reshape(1, -1))[0].clone().detach().clone()
        )
        if center.shape != (input_dim,):
            raise ValueError(f"expected center of shape ({input_dim},), got {tuple(center.shape)}")
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.register_buffer("center", center.float())
        self.encoder = nn.Linear(input_dim, latent_dim, bias=bias)
        self.decoder = nn.Linear(latent_dim, input_dim, bias=bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code. Args: x ``(B, d)`` or ``(B, 1, H, W)``. Returns: z ``(B, m)``."""
        return self.encoder(self._inputs(x) - self.center)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction. Args: z ``(B, m)``. Returns: x_hat ``(B, d)``."""
        return super().decode(z) + self.center

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """The output itself: the output layer is linear (no sigmoid)."""
        return output


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (a tied weight counts once).

    Args:
        model: any module.
    Returns:
        The number of scalars in the trainable parameters (644,804 for the seed's network).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class VAEOutput(NamedTuple):
    """A VAE's output: reconstruction logits ``(B, d)``, ``mu`` and ``logvar`` ``(B, m)``."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VariationalAutoencoder(nn.Module):
    """Variational autoencoder with a Gaussian encoder and a Bernoulli decoder.

    Kingma & Welling (2014), "Auto-Encoding Variational Bayes", https://arxiv.org/abs/1312.6114.
    The encoder maps x to the mean ``mu`` and log-variance ``logvar`` of q(z|x); a code is drawn by
    the reparameterization ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``; the decoder gives
    logits of p(x|z). The layer sizes follow the seed (784-400-20) and pytorch/examples' VAE.

    Args:
        input_dim: pixels per image ``d``.
        hidden_dim: width of the hidden layer of encoder and decoder.
        latent_dim: code size ``m``.
        normalize_input: feed ``(x - 0.5) / 0.5`` to the encoder, as the seed did.
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dim: int = 400,
        latent_dim: int = 20,
        normalize_input: bool = True,
    ):
        super().__init__()
        _check_sizes(input_dim=input_dim, hidden_dim=hidden_dim, latent_dim=latent_dim)
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.config = {
            "input_dim": input_dim,
            "hidden_dim": hidden_dim,
            "latent_dim": latent_dim,
            "normalize_input": normalize_input,
        }
        self.encoder = nn.Sequential(
            Standardize() if normalize_input else nn.Identity(),
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
        )
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, input_dim)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Mean code ``mu`` ``(B, m)``, deterministic: what the book plots and interpolates."""
        return self.encode_distribution(x)[0]

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian q(z|x) = N(mu, diag sigma^2) of a batch.

        Args:
            x: images ``(B, d)`` or ``(B, 1, 28, 28)``, floats in [0, 1].
        Returns:
            ``(mu, logvar)``, each ``(B, m)``.
        """
        h = self.encoder(flatten_images(x, self.input_dim, _dtype(self)))
        return self.to_mu(h), self.to_logvar(h)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The reparameterization trick (Kingma & Welling 2014, sec. 2.4; book: ``04-reparam``).

        Args:
            mu: means ``(B, m)``.
            logvar: log-variances ``log sigma^2``, ``(B, m)``.
            generator: draws ``eps`` (the CPU's global generator when None).
        Returns:
            ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, ``(B, m)``, differentiable in ``mu``.
        """
        return reparameterize(mu, logvar, draw("normal", mu.shape, generator, mu.device, mu.dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z). Args: z ``(B, m)``. Returns: ``(B, d)``."""
        return self.decoder(check_codes(z, self.latent_dim))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """One sampled reconstruction. Returns :class:`VAEOutput` ``(logits, mu, logvar)``."""
        mu, logvar = self.encode_distribution(x)
        return VAEOutput(self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar)

    output = "logits"

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``sigmoid(output)`` of the decoder's logits."""
        return torch.sigmoid(output)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded mean code ``sigmoid(g(mu(x)))`` in the shape of ``x`` (no sampling)."""
        return self.to_pixels(self.decode(self.encode(x))).reshape(x.shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images decoded from codes drawn from the prior ``z ~ N(0, I)``.

        Args:
            n: how many.
            generator: draws the codes (the CPU's global generator when None).
        Returns:
            Pixel probabilities ``(n, d)``.
        """
        check_positive_int("n", n)
        device = next(self.parameters()).device
        z = draw("normal", (n, self.latent_dim), generator, device)
        return self.to_pixels(self.decode(z))


class ConvAutoencoder(AutoencoderBase):
    """A small convolutional autoencoder for 28x28 images: 1→16→32 channels, a linear code.

    Weight sharing: each 3x3 filter (stride 2) is applied at every position, so the encoder has
    ~5k convolution weights where a dense first layer has 784 x 400. ``forward`` returns logits
    ``(B, 784)`` like :class:`Autoencoder`, so the same losses and :func:`aelib.fit` apply.

    Args:
        latent_dim: code size ``m``.
        channels: channels of the two convolution layers.
        normalize_input: feed ``(x - 0.5) / 0.5`` to the encoder, as the seed did.
    """

    def __init__(
        self,
        latent_dim: int = 20,
        channels: tuple[int, int] = (16, 32),
        normalize_input: bool = True,
    ):
        super().__init__()
        _check_sizes(
            latent_dim=latent_dim, **{f"channels[{i}]": c for i, c in enumerate(channels)}
        )
        c1, c2 = channels
        self.input_dim, self.latent_dim = 784, latent_dim
        self.config = {
            "latent_dim": latent_dim,
            "channels": list(channels),
            "normalize_input": normalize_input,
        }
        self.encoder = nn.Sequential(
            Standardize() if normalize_input else nn.Identity(),
            nn.Conv2d(1, c1, 3, stride=2, padding=1),
            nn.ReLU(),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),  # (B, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * 49, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, c2 * 49),
            nn.ReLU(),
            nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28)
            nn.Flatten(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, 784)`` or ``(B, 1, 28, 28)`` in [0, 1]. Returns: z ``(B, m)``."""
        return self.encoder(self._inputs(x).reshape(-1, 1, 28, 28))
