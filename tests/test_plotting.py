import matplotlib.pyplot as plt
import pytest
import torch

import aelib
from aelib.plotting import compare_losses, latent_grid, latent_scatter, sweep_plot


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_latent_scatter_one_legend_entry_per_label():
    z = torch.randn(60, 2, generator=torch.Generator().manual_seed(0))
    y = torch.arange(60) % 10
    fig = latent_scatter(z, y, title="codes")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(d) for d in range(10)]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 60
    assert ax.get_title() == "codes"


def test_latent_scatter_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        latent_scatter(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        latent_scatter(torch.zeros(5, 2), torch.zeros(4, dtype=torch.long))


def test_latent_grid_decodes_codes_in_reading_order(tmp_path):
    torch.manual_seed(0)
    model = aelib.Autoencoder(hidden_dim=16, latent_dim=2)
    n = 3
    fig = latent_grid(model, (-1.0, -2.0), (1.0, 2.0), n=n, path=tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()
    image = fig.axes[0].get_images()[0]
    # the codes sit at the cells' centres, one step apart: the image reaches half a step further
    assert image.get_extent() == pytest.approx([-1.5, 1.5, -3.0, 3.0])
    pixels = torch.as_tensor(image.get_array().data)
    assert pixels.shape == (28 * n, 28 * n)
    top_left = torch.sigmoid(model.decode(torch.tensor([[-1.0, 2.0]]))).reshape(28, 28)
    bottom_right = torch.sigmoid(model.decode(torch.tensor([[1.0, -2.0]]))).reshape(28, 28)
    torch.testing.assert_close(pixels[:28, :28], top_left.detach())
    torch.testing.assert_close(pixels[-28:, -28:], bottom_right.detach())


def test_latent_grid_needs_a_two_dimensional_code():
    with pytest.raises(ValueError, match="latent_dim=2"):
        latent_grid(aelib.Autoencoder(hidden_dim=8, latent_dim=3), (-1, -1), (1, 1))
    with pytest.raises(ValueError, match="z_min < z_max"):
        latent_grid(aelib.Autoencoder(hidden_dim=8, latent_dim=2), (1, -1), (1, 1))


def test_sweep_plot_marks_the_best_value():
    fig = sweep_plot([1e-4, 1e-3, 1e-2], [3.0, 1.0, 2.0], "lr", logx=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    star = ax.get_lines()[1]
    assert list(star.get_xdata()) == [1e-3] and list(star.get_ydata()) == [1.0]
    with pytest.raises(ValueError, match="as many losses"):
        sweep_plot([1, 2], [1.0], "m")


def test_compare_losses_draws_one_line_per_run():
    runs = {"a": aelib.History([3.0, 2.0], [3.5, 2.5]), "b": aelib.History([4.0, 1.0], [4.5, 1.5])}
    ax = compare_losses(runs).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert list(ax.get_lines()[1].get_ydata()) == [4.5, 1.5]
    assert list(compare_losses(runs, split="train").axes[0].get_lines()[0].get_ydata()) == [
        3.0,
        2.0,
    ]
    with pytest.raises(ValueError, match="no test losses"):
        compare_losses({"c": aelib.History([1.0], [])})


def test_image_grid_keeps_a_narrow_default_figure():
    fig = aelib.plotting.image_grid(torch.zeros(16, 784), nrow=8)
    assert tuple(fig.get_size_inches()) == pytest.approx((6.4, 2.0))


def test_image_grid_scales_a_wide_default_figure_to_the_book_column():
    fig = aelib.plotting.image_grid(torch.zeros(32, 784), nrow=16)
    width, height = fig.get_size_inches()
    assert width == pytest.approx(7.0)
    assert width / height == pytest.approx(12.8 / 2.0)  # 16 x 0.8 in, 2 rows x 0.8 + 0.4


def test_book_figsize_scales_both_sides_down_to_the_column():
    from aelib.plotting import BOOK_WIDTH, book_figsize

    assert BOOK_WIDTH == 7.0
    assert book_figsize(6.4, 2.0) == (6.4, 2.0)
    assert book_figsize(7.0, 3.0) == (7.0, 3.0)
    assert book_figsize(14.0, 3.0) == pytest.approx((7.0, 1.5))
    with pytest.raises(ValueError, match="positive"):
        book_figsize(0.0, 1.0)
