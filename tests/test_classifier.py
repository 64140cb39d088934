"""The digit classifier: learns, repeats under a seed, and its probabilities are a softmax."""

import pytest
import torch
import torch.nn.functional as F

from aelib.classifier import DigitClassifier, accuracy, predict_proba, train_classifier


def _two_blobs(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes that differ in which half of the image is bright (tiny synthetic set)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=g) * 0.2
    y = torch.arange(n) % 2
    x[y == 0, :392] += 0.7
    x[y == 1, 392:] += 0.7
    return x.clamp(0, 1), y


def test_learns_a_separable_problem():
    x, y = _two_blobs()
    untrained = DigitClassifier()
    model = train_classifier(x, y, num_epochs=5, seed=1)
    assert accuracy(model, x, y) == 1.0
    assert F.cross_entropy(model(x), y) < 0.5 * F.cross_entropy(untrained(x), y)


def test_same_seed_same_weights_and_global_state_untouched():
    x, y = _two_blobs()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier(x, y, num_epochs=2, seed=7)
    after = torch.rand(3)
    b = train_classifier(x, y, num_epochs=2, seed=7)
    c = train_classifier(x, y, num_epochs=2, seed=8)
    torch.testing.assert_close(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_predict_proba_is_the_softmax_of_the_logits_for_every_input_layout():
    x, y = _two_blobs(8)
    model = train_classifier(x, y, num_epochs=1, seed=0)
    expected = torch.softmax(model.head(torch.relu(model.hidden(x))), dim=1)
    torch.testing.assert_close(predict_proba(model, x), expected)
    torch.testing.assert_close(
        predict_proba(model, x.reshape(8, 1, 28, 28), batch_size=3), expected
    )
    u8 = (x * 255).round().to(torch.uint8).reshape(8, 1, 28, 28)
    torch.testing.assert_close(predict_proba(model, u8), predict_proba(model, u8.float() / 255))
    assert model.features(x).shape == (8, 256) and (model.features(x) >= 0).all()


@pytest.mark.parametrize(
    "y, match",
    [
        (torch.zeros(64), "integer class labels"),
        (torch.zeros(3, dtype=torch.long), "one per image"),
        (torch.full((64,), 10), "0..9"),
    ],
)
def test_bad_labels_are_named(y, match):
    x, _ = _two_blobs()
    with pytest.raises(ValueError, match=match):
        train_classifier(x, y, num_epochs=1)
