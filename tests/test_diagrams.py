import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from aelib.diagrams import SEED_LAYERS, architecture_diagram  # noqa: E402


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_seed_architecture_has_its_labels(tmp_path):
    path = tmp_path / "architecture.png"
    fig = architecture_diagram(path=path)
    try:
        assert isinstance(fig, Figure)
        labels = texts(fig)
        for expected in ("$x$", "$h$", "$z$", "$h'$", r"$\hat{x}$", "784", "400", "20"):
            assert expected in labels, f"missing {expected!r} in {labels}"
        assert labels.count("784") == 2 and labels.count("400") == 2
        assert any(t.startswith("encoder") and r"f_\theta" in t for t in labels)
        assert any(t.startswith("decoder") and r"g_\phi" in t for t in labels)
        assert sum("sigmoid" in t for t in labels) == 1
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.close(fig)


def test_box_heights_grow_with_width():
    fig = architecture_diagram((784, 400, 20, 400, 784))
    try:
        boxes = [p for p in fig.axes[0].patches if type(p).__name__ == "FancyBboxPatch"]
        heights = [round(b.get_height(), 6) for b in boxes]
        assert len(boxes) == len(SEED_LAYERS)
        assert heights[2] < heights[1] < heights[0] and heights == heights[::-1]
    finally:
        plt.close(fig)


def test_deeper_model_names_hidden_layers_and_draws_on_given_axes():
    fig, ax = plt.subplots()
    try:
        assert architecture_diagram((784, 512, 128, 10, 128, 512, 784), ax=ax) is fig
        labels = texts(fig)
        for expected in ("$h_1$", "$h_2$", "$z$", "$h_2'$", "$h_1'$", "10"):
            assert expected in labels
    finally:
        plt.close(fig)


@pytest.mark.parametrize("sizes", [(784, 20), (784, 400, 20, 784), (784, 0, 784)])
def test_rejects_layer_lists_without_a_middle_code(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        architecture_diagram(sizes)


def test_rejects_wrong_number_of_activation_labels():
    with pytest.raises(ValueError, match="one activation label per arrow"):
        architecture_diagram((784, 20, 784), activations=["ReLU"])
