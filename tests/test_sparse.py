"""TopK sparse autoencoder: TopK against a sort, metrics by hand, class purity by a loop."""

import pytest
import torch

import aelib
from aelib import sparse as S


def test_topk_matches_a_sort():
    pre = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    z = S.topk_activation(pre, 5)
    for row, out in zip(pre, z):
        threshold = row.sort(descending=True).values[4]
        expected = torch.where(row >= threshold, row.clamp(min=0), torch.zeros(()))
        torch.testing.assert_close(out, expected)
    assert ((z != 0).sum(1) <= 5).all()
    with pytest.raises(ValueError, match="k must lie"):
        S.topk_activation(pre, 41)


def test_model_is_the_formula_with_unit_decoder_columns():
    sae = S.TopKSparseAutoencoder(input_dim=8, num_latents=32, k=4, seed=1)
    with torch.no_grad():
        sae.w_dec.mul_(torch.linspace(0.5, 3, 32))  # columns of any length: the model normalises
        sae.b_pre.normal_(generator=torch.Generator().manual_seed(2))
    h = torch.rand(5, 8, generator=torch.Generator().manual_seed(3))
    w = sae.w_dec / sae.w_dec.norm(dim=0)
    z = S.topk_activation((h - sae.b_pre) @ sae.w_enc.T + sae.b_enc, 4)
    torch.testing.assert_close(sae(h), z @ w.T + sae.b_pre)
    torch.testing.assert_close(sae.decoder_weight().norm(dim=0), torch.ones(32))
    torch.testing.assert_close(
        sae.w_enc.detach(), S.TopKSparseAutoencoder(8, 32, 4, seed=1).w_dec.detach().T
    )


def test_metrics_by_hand():
    z = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    assert S.l0(z) == 1.5 and S.dead_latents(z) == 2
    h = torch.tensor([[0.0, 2.0], [2.0, 0.0]])  # centred: total squared deviation 4
    assert S.fraction_of_variance_explained(h, h) == 1.0
    assert S.fraction_of_variance_explained(h.mean(0).expand_as(h), h) == pytest.approx(0.0)
    assert S.fraction_of_variance_explained(
        torch.tensor([[0.0, 1.0], [2.0, 0.0]]), h
    ) == pytest.approx(0.75)


def test_class_purity_matches_a_loop():
    g = torch.Generator().manual_seed(4)
    z = torch.rand(50, 6, generator=g)
    z[:, 5] = 0.0
    z[:3, 5] = 1.0  # active on three inputs only: too few for top = 10
    y = torch.randint(0, 3, (50,), generator=g)
    purity, majority = S.class_purity(z, y, top=10)
    for j in range(5):
        labels = y[z[:, j].argsort(descending=True)[:10]]
        counts = torch.bincount(labels, minlength=3)
        assert purity[j].item() == pytest.approx(counts.max().item() / 10)
        assert counts[majority[j]] == counts.max()
    assert purity[5] == 0


def test_fit_trains_it_on_activations_in_the_unit_interval():
    g = torch.Generator().manual_seed(5)
    atoms = torch.rand(4, 16, generator=g)
    h = (torch.rand(256, 4, generator=g) < 0.3).float() @ atoms / 4  # sparse mixtures of 4 atoms
    sae = S.TopKSparseAutoencoder(input_dim=16, num_latents=16, k=4, seed=0)
    before = S.fraction_of_variance_explained(sae(h).detach(), h)
    aelib.fit(
        sae,
        h,
        num_epochs=100,
        batch_size=64,
        lr=1e-2,
        loss_fn=aelib.mse_loss,
        verbose=0,
    )
    after = S.fraction_of_variance_explained(sae(h).detach(), h)
    assert after > 0.95 > before
