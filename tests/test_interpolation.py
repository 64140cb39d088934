"""Path scores against brute-force loops, closed-form cases and the classifier's own softmax."""

import pytest
import torch

from aelib.classifier import DigitClassifier
from aelib.interpolation import cross_fade, detour, digit_confidence, speed_unevenness


def _random_path(num_steps=6, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(num_steps + 1, batch, 28, 28, generator=g)


def test_scores_match_a_loop_over_steps_and_walks():
    path = _random_path()
    num_steps = len(path) - 1
    for b in range(path.shape[1]):
        steps = [
            float((path[k, b] - path[k - 1, b]).pow(2).sum().sqrt())
            for k in range(1, num_steps + 1)
        ]
        straight = float((path[-1, b] - path[0, b]).pow(2).sum().sqrt())
        length = sum(steps)
        expected_u = num_steps * sum(s * s for s in steps) / length**2
        assert speed_unevenness(path)[b].item() == pytest.approx(expected_u, rel=1e-5)
        assert detour(path)[b].item() == pytest.approx(length / straight, rel=1e-5)


def test_product_is_the_single_ratio_of_chapter_4():
    path = _random_path(num_steps=10, batch=4, seed=1)
    num_steps = len(path) - 1
    ratio = (
        num_steps
        * (path[1:] - path[:-1]).pow(2).flatten(2).sum(dim=2).sum(dim=0)
        / (path[-1] - path[0]).pow(2).flatten(1).sum(dim=1)
    )
    torch.testing.assert_close(speed_unevenness(path) * detour(path).pow(2), ratio)
    assert (speed_unevenness(path) >= 1).all() and (detour(path) >= 1).all()


def test_cross_fade_scores_one_and_a_jump_scores_t():
    g = torch.Generator().manual_seed(2)
    x_a, x_b = torch.rand(5, 784, generator=g), torch.rand(5, 784, generator=g)
    t = torch.linspace(0, 1, 11)
    fade = cross_fade(x_a, x_b, t)
    assert fade.shape == (11, 5, 784)
    torch.testing.assert_close(fade[3], 0.7 * x_a + 0.3 * x_b)
    torch.testing.assert_close(speed_unevenness(fade), torch.ones(5))
    torch.testing.assert_close(detour(fade), torch.ones(5))
    jump = torch.stack([x_a] * 5 + [x_b] * 6)  # all the change in one of the 10 steps
    torch.testing.assert_close(speed_unevenness(jump), torch.full((5,), 10.0))
    torch.testing.assert_close(detour(jump), torch.ones(5))
    back_and_forth = torch.stack([x_a, x_b, x_a, x_b])  # length 3, straight distance 1
    torch.testing.assert_close(detour(back_and_forth), torch.full((5,), 3.0))


def test_digit_confidence_is_the_largest_softmax_probability_for_any_layout():
    torch.manual_seed(0)
    classifier = DigitClassifier().eval()
    path = _random_path(num_steps=2, batch=4, seed=3)
    with torch.no_grad():
        expected = torch.softmax(classifier(path.reshape(-1, 784)), dim=1).amax(dim=1)
    torch.testing.assert_close(digit_confidence(classifier, path), expected.reshape(3, 4))
    torch.testing.assert_close(
        digit_confidence(classifier, path.reshape(3, 4, 784)), expected.reshape(3, 4)
    )
    torch.testing.assert_close(digit_confidence(classifier, path[0, 0]), expected[0])


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="T >= 1"):
        speed_unevenness(torch.zeros(1, 2, 784))
    with pytest.raises(ValueError, match="must move"):
        speed_unevenness(torch.ones(4, 2, 784))
    with pytest.raises(ValueError, match="ends somewhere else|end somewhere else"):
        detour(torch.zeros(3, 2, 784))
    with pytest.raises(ValueError, match="same shape"):
        cross_fade(torch.zeros(2, 784), torch.zeros(3, 784), [0.0, 1.0])
