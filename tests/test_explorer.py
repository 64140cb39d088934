import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import aelib
from aelib import explorer as E
from aelib import inference as I
from aelib.regularizers import GaussianNoise


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def model_2d(seed=0):
    torch.manual_seed(seed)
    return aelib.Autoencoder(hidden_dim=16, latent_dim=2)


def model_8d(seed=0):
    torch.manual_seed(seed)
    return aelib.Autoencoder(hidden_dim=16, latent_dim=8)


def png_pixels(data: bytes) -> np.ndarray:
    """The grey values of a PNG in [0, 1], (H, W); to_png stores grey as equal RGB channels."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) / 255
    assert (rgb == rgb[..., :1]).all(), "not a grey image"
    return rgb[..., 0]


def test_to_png_lays_images_out_with_grey_borders():
    rows = torch.zeros(2, 3, 28, 28)
    rows[1, 2] = 1.0
    pixels = png_pixels(E.to_png(rows, scale=2, padding=2))
    assert pixels.shape == (2 * (2 * 30 + 2), 2 * (3 * 30 + 2))
    assert pixels[0, 0] == pytest.approx(128 / 255)  # border
    assert pixels[4, 4] == 0.0  # first image, black
    assert pixels[-5, -5] == 1.0  # last image, white
    assert E.to_png(torch.zeros(3, 28, 28)) == E.to_png(torch.zeros(1, 3, 28, 28))
    assert E.to_png(torch.zeros(28, 28)) == E.to_png(torch.zeros(1, 1, 28, 28))
    assert png_pixels(E.to_png(torch.ones(28, 28), scale=1)).shape == (32, 32)  # bordered too
    with pytest.raises(ValueError, match=r"\(R, C, H, W\)"):
        E.to_png(torch.zeros(784))


def canvas_by_hand(rows: torch.Tensor, scale: int, padding: int = 2) -> np.ndarray:
    """The layout written out: a grey canvas, each image pasted in, rounded, pixels repeated."""
    r, c, h, w = rows.shape
    canvas = np.full((r * (h + padding) + padding, c * (w + padding) + padding), 0.5)
    for i in range(r):
        for j in range(c):
            top, left = padding + i * (h + padding), padding + j * (w + padding)
            canvas[top : top + h, left : left + w] = rows[i, j].clamp(0, 1).double().numpy()
    levels = np.floor(canvas * 255 + 0.5) / 255
    return levels.repeat(scale, axis=0).repeat(scale, axis=1)


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (1, 1, 28, 28), (4, 6, 5, 7)])
@pytest.mark.parametrize("scale", [1, 3])
def test_to_png_has_the_pixels_of_the_layout_by_hand(mnist, shape, scale):
    g = torch.Generator().manual_seed(0)
    digits = aelib.to_float(mnist.x_test[:24]).reshape(24, 28, 28)[:, : shape[2], : shape[3]]
    images = {
        "digits": digits[: shape[0] * shape[1]].reshape(shape),
        "probabilities": torch.sigmoid(3 * torch.randn(shape, generator=g)),
        "out of range": 1.4 * torch.rand(shape, generator=g) - 0.2,
    }
    for name, rows in images.items():
        got, expected = png_pixels(E.to_png(rows, scale)), canvas_by_hand(rows, scale)
        assert got.shape == expected.shape, name
        # exact but where float32 and float64 round a value within 1e-6 of a half level apart
        assert np.abs(got - expected).max() <= 1 / 255 + 1e-9, name
        assert (got != expected).mean() < 1e-3, name


def test_latent_slider_update_draws_the_decoded_code():
    model = model_2d()
    explorer = E.latent_slider_explorer(model, extent=2.0, scale=1)
    assert isinstance(explorer.widget, widgets.Box)
    x_hat = explorer.update(0.5, -1.0)
    expected = torch.sigmoid(model.decode(torch.tensor([[0.5, -1.0]]))).reshape(28, 28).detach()
    torch.testing.assert_close(x_hat, expected)
    pixels = png_pixels(explorer.image.value)[2:30, 2:30]  # one image inside a 2-pixel border
    np.testing.assert_allclose(pixels, expected.numpy(), atol=0.5 / 255 + 1e-6)
    assert "(0.50, -1.00)" in explorer.caption.value
    assert explorer.image.layout.width == f"{Image.open(io.BytesIO(explorer.image.value)).width}px"
    assert explorer.controls["z1"].min == -2.0 and explorer.controls["z2"].max == 2.0


def test_latent_slider_range_from_four_numbers_starts_in_the_middle():
    explorer = E.latent_slider_explorer(model_2d(), extent=(-1, 3, -10, 0))
    z1, z2 = explorer.controls["z1"], explorer.controls["z2"]
    assert (z1.min, z1.max, z2.min, z2.max) == (-1.0, 3.0, -10.0, 0.0)
    assert (z1.value, z2.value) == (1.0, -5.0)
    with pytest.raises(ValueError, match="z1_min < z1_max"):
        E.latent_slider_explorer(model_2d(), extent=(1, -1, 0, 1))


def test_moving_a_slider_calls_the_callback():
    model = model_2d()
    explorer = E.latent_slider_explorer(model, scale=1)  # starts at the centre, (0, 0)
    start = explorer.image.value
    assert start == E.to_png(
        I.codes_to_images(model, torch.zeros(1, 2))[0], 1
    )  # drawn at z0 on creation
    explorer.controls["z1"].value = 1.5
    assert explorer.image.value != start
    assert explorer.image.value == E.to_png(
        I.codes_to_images(model, torch.tensor([[1.5, 0.0]]))[0], 1
    )
    assert "(1.50, 0.00)" in explorer.caption.value


def test_latent_slider_needs_a_two_dimensional_code():
    with pytest.raises(ValueError, match="latent_dim=2"):
        E.latent_slider_explorer(model_8d())


def test_interpolation_ends_are_the_reconstructions(mnist):
    model = model_8d()
    x_a, x_b = mnist.x_test[:1], mnist.x_test[1:2]
    explorer = E.interpolation_explorer(model, x_a, x_b)
    start, end = explorer.update(0.0), explorer.update(1.0)
    recon = model.reconstruct(aelib.to_float(mnist.x_test[:2])).reshape(2, 28, 28)
    torch.testing.assert_close(start[0], recon[0])
    torch.testing.assert_close(end[0], recon[1])
    torch.testing.assert_close(start[1], aelib.to_float(x_a).reshape(28, 28))
    middle = explorer.update(0.5)
    torch.testing.assert_close(
        middle[1], aelib.to_float(torch.cat([x_a, x_b])).reshape(2, 28, 28).mean(0)
    )
    z = model.encode(aelib.to_float(mnist.x_test[:2]))
    torch.testing.assert_close(middle[0], I.codes_to_images(model, z.mean(0, keepdim=True))[0])
    explorer.controls["t"].value = 0.25
    assert "t = 0.25" in explorer.caption.value


def test_interpolate_accepts_many_positions_and_checks_them(mnist):
    model = model_8d()
    strip = I.interpolate(model, mnist.x_test[0], mnist.x_test[1], torch.linspace(0, 1, 5))
    assert strip.shape == (5, 28, 28)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        I.interpolate(model, mnist.x_test[0], mnist.x_test[1], 1.5)
    with pytest.raises(ValueError, match="one 28x28 image"):
        I.interpolate(model, mnist.x_test[:2], mnist.x_test[1], 0.5)


def test_interpolate_pairs_walks_each_pair_like_interpolate(mnist):
    model = model_8d()
    t = torch.linspace(0, 1, 4)
    x_a, x_b = mnist.x_test[:3], mnist.x_test[3:6]
    paths = I.interpolate_pairs(model, x_a, x_b, t)
    assert paths.shape == (4, 3, 28, 28)
    for i in range(3):
        torch.testing.assert_close(paths[:, i], I.interpolate(model, x_a[i], x_b[i], t))
    with pytest.raises(ValueError, match="pair up"):
        I.interpolate_pairs(model, x_a, x_b[:2], t)


def test_denoising_update_scales_one_noise_pattern(mnist):
    model = model_8d()
    x = mnist.x_test[:3]
    clean = aelib.to_float(x)
    explorer = E.denoising_explorer(model, x, seed=7)
    rows = explorer.update(0.0)
    assert rows.shape == (3, 3, 28, 28)
    torch.testing.assert_close(rows[1], rows[0])  # sigma 0: the noisy row is the clean row
    rows = explorer.update(0.2)
    expected = GaussianNoise(0.2)(clean, torch.Generator().manual_seed(7))
    torch.testing.assert_close(rows[1].reshape(3, 784), expected)
    torch.testing.assert_close(rows[2].reshape(3, 784), model.reconstruct(expected))
    eps = torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))
    inside = (clean + 0.4 * eps > 0) & (clean + 0.4 * eps < 1)
    torch.testing.assert_close(
        I.denoise(model, x, 0.4, seed=7)[0].reshape(3, 784)[inside], (clean + 0.4 * eps)[inside]
    )
    explorer.controls["sigma"].value = 0.5
    assert explorer.caption.value.startswith("σ = 0.50") and "dB" in explorer.caption.value


def test_decode_grid_accepts_a_half_width_or_four_numbers():
    model = model_2d()
    fig = E.decode_grid(model, 2.0, n=3)
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_images()[0].get_extent() == pytest.approx(
        [-3.0, 3.0, -3.0, 3.0]
    )  # half a step out
    fig = E.decode_grid(model, (-1, 1, -3, 0), n=4, title="grid")
    image = fig.axes[0].get_images()[0]
    assert image.get_extent() == pytest.approx([-4 / 3, 4 / 3, -3.5, 0.5])
    assert image.get_array().shape == (4 * 28, 4 * 28)
    with pytest.raises(ValueError, match="extent"):
        E.decode_grid(model, (1, 2, 3))


def test_static_figures(mnist):
    model = model_8d()
    fig = E.interpolation_figure(model, mnist.x_test[0], mnist.x_test[1], steps=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = E.denoising_figure(model, mnist.x_test[:2], [0.1, 0.3, 0.5])
    assert [ax.get_title() for ax in fig.axes] == ["σ = 0.1", "σ = 0.3", "σ = 0.5"]
    with pytest.raises(ValueError, match="noise level"):
        E.denoising_figure(model, mnist.x_test[:2], [])


def test_denoising_figure_fits_the_book_column(mnist):
    model = model_8d()
    # 2 images at 4 noise levels ask for 1.6 * 2 * 4 / 2 + 1 = 7.4 by 2.2 inches
    fig = E.denoising_figure(model, mnist.x_test[:2], [0.1, 0.2, 0.3, 0.4])
    width, height = fig.get_size_inches()
    assert width == pytest.approx(7.0)
    assert width / height == pytest.approx(7.4 / 2.2)
    fig = E.denoising_figure(model, mnist.x_test[:2], [0.1, 0.3])  # 4.2 in: unchanged
    assert tuple(fig.get_size_inches()) == pytest.approx((4.2, 2.2))
