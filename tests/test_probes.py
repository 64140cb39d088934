"""Probes: the balanced label draw, the linear probe against scikit-learn, precision@k by loop."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from aelib import probes


def test_few_labels_is_balanced_and_seeded():
    y = torch.arange(200) % 10
    idx = probes.few_labels(y, 30, seed=0)
    assert torch.equal(torch.bincount(y[idx], minlength=10), torch.full((10,), 3))
    assert torch.equal(idx, probes.few_labels(y, 30, seed=0))
    assert not torch.equal(idx, probes.few_labels(y, 30, seed=1))
    with pytest.raises(ValueError, match="multiple"):
        probes.few_labels(y, 25, seed=0)


def test_linear_probe_matches_sklearn_by_hand():
    g = torch.Generator().manual_seed(1)
    z_train, z_test = torch.randn(60, 5, generator=g), torch.randn(40, 5, generator=g)
    y_train, y_test = (z_train[:, 0] > 0).long(), (z_test[:, 0] > 0).long()
    scaler = StandardScaler().fit(z_train.numpy())
    clf = LogisticRegression(C=0.5, max_iter=1000).fit(
        scaler.transform(z_train.numpy()), y_train.numpy()
    )
    expected = np.mean(clf.predict(scaler.transform(z_test.numpy())) == y_test.numpy())
    assert probes.linear_probe(z_train, y_train, z_test, y_test, c=0.5) == pytest.approx(expected)
    assert expected > 0.9  # the label is a linear function of the codes


def test_precision_at_k_matches_a_loop():
    g = torch.Generator().manual_seed(2)
    zq, zb = torch.randn(7, 3, generator=g), torch.randn(30, 3, generator=g)
    yq, yb = torch.randint(0, 3, (7,), generator=g), torch.randint(0, 3, (30,), generator=g)
    hits = 0
    for q in range(7):
        order = sorted(range(30), key=lambda i: float(((zq[q] - zb[i]) ** 2).sum()))
        hits += sum(int(yb[i] == yq[q]) for i in order[:4])
    assert probes.precision_at_k(zq, yq, zb, yb, k=4) == pytest.approx(hits / 28)


def test_few_labels_is_the_stratified_draw_sorted_and_refuses_a_missing_class():
    from aelib import evidence

    y = torch.arange(10).repeat_interleave(20)
    drawn = evidence.stratified(y, 3, seed=4).sort().values
    assert torch.equal(probes.few_labels(y, 30, seed=4), drawn)
    with pytest.raises(ValueError, match="class 3 has 0 examples"):
        probes.few_labels(y[y != 3], 30, seed=0)
