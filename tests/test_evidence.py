"""Seed offsets, fair samples and spreads (aelib.utils, aelib.evidence)."""

import math
import statistics

import pytest
import torch

import aelib
from aelib import evidence
from tests.conftest import fails


@pytest.fixture
def no_offset(monkeypatch):
    monkeypatch.delenv("AELIB_SEED_OFFSET", raising=False)


def test_the_offset_shifts_every_seeded_draw(monkeypatch, no_offset):
    plain = aelib.generator(5)
    monkeypatch.setenv("AELIB_SEED_OFFSET", "2")
    shifted = aelib.generator(3)
    assert torch.equal(torch.rand(8, generator=plain), torch.rand(8, generator=shifted))
    aelib.seed_everything(3)
    a = torch.rand(4)
    monkeypatch.delenv("AELIB_SEED_OFFSET")
    aelib.seed_everything(5)
    assert torch.equal(a, torch.rand(4))


def test_fit_and_the_classifier_honour_the_offset(monkeypatch, no_offset):
    from aelib.classifier import train_classifier

    x = torch.rand(64, 1, 28, 28)
    y = torch.arange(64) % 10

    def run():
        aelib.seed_everything(0)
        model = aelib.Autoencoder(hidden_dim=16, latent_dim=2)
        history = aelib.fit(model, x, num_epochs=1, batch_size=16, seed=1, verbose=0)
        clf = train_classifier(x, y, seed=1, num_epochs=1, hidden_dim=8)
        return history.train_loss[-1], next(clf.parameters()).sum().item()

    first = run()
    assert run() == first
    monkeypatch.setenv("AELIB_SEED_OFFSET", "1")
    assert run() != first


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", str(2**31)])
def test_an_unusable_offset_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("AELIB_SEED_OFFSET", value)
    with pytest.raises(ValueError, match=r"AELIB_SEED_OFFSET=.* is unusable: set it to a non-neg"):
        aelib.generator(0)


def test_the_cli_refuses_an_offset_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AELIB_SEED_OFFSET", "1")
    line = fails(capsys, ["train", "--out", str(tmp_path / "run"), "--epochs", "1"])
    assert "AELIB_SEED_OFFSET=1 is for re-running the book's chapters" in line
    assert not (tmp_path / "run").exists()


def test_stratified_draws_each_class_equally_and_interleaved(no_offset):
    labels = torch.arange(10).repeat_interleave(30)  # sorted by class, as the splits are
    idx = evidence.stratified(labels, per_class=4, seed=0)
    assert idx.shape == (40,) and len(set(idx.tolist())) == 40
    assert labels[idx[:10]].tolist() == list(range(10))
    assert torch.bincount(labels[idx], minlength=10).tolist() == [4] * 10
    assert torch.equal(idx, evidence.stratified(labels, per_class=4, seed=0))
    assert not torch.equal(idx, evidence.stratified(labels, per_class=4, seed=1))


def test_stratified_refuses_too_few_examples():
    labels = torch.tensor([0, 0, 1])
    with pytest.raises(ValueError, match="class 1 has 1 examples, fewer than per_class=2"):
        evidence.stratified(labels, per_class=2)


def test_shuffled_draws_distinct_indices(no_offset):
    idx = evidence.shuffled(100, 30, seed=3)
    assert len(set(idx.tolist())) == 30 and idx.max() < 100
    assert idx.tolist() != sorted(idx.tolist())


def test_spread_matches_the_statistics_module():
    values = [91.3, 90.1, 92.6, 91.0]
    s = evidence.Spread.of(torch.tensor(values, dtype=torch.float64))
    assert math.isclose(s.mean, statistics.mean(values))
    assert math.isclose(s.std, statistics.stdev(values))
    assert (s.min, s.max, s.n) == (90.1, 92.6, 4)
    assert str(s) == "91.2 ± 1.03 (90.1 to 92.6, 4 seeds)"
    d = evidence.paired([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    assert (d.mean, d.std) == (3.0, 1.0)


@pytest.mark.parametrize("values", [[1.0], [1.0, float("nan")]])
def test_spread_refuses_one_value_or_nan(values):
    with pytest.raises(ValueError, match="a spread needs"):
        evidence.Spread.of(values)
