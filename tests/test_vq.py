"""Vector quantisation: nearest codes by brute force, the straight-through gradient by its
definition, the loss terms by hand, usage statistics on a hand case, the dead-code fix."""

import math

import pytest
import torch

import aelib
from aelib import vq


def test_nearest_code_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, 4, generator=g)
    codebook = torch.randn(7, 4, generator=g)
    k = vq.nearest_code(z, codebook)
    for b in range(5):
        for s in range(3):
            dists = [float(((z[b, s] - e) ** 2).sum()) for e in codebook]
            assert k[b, s] == min(range(7), key=dists.__getitem__)


def test_straight_through_value_and_gradient():
    """Forward: z_q. Backward: d loss / d z_e equals d loss / d z_q evaluated at z_q (identity)."""
    g = torch.Generator().manual_seed(1)
    z_e = torch.randn(4, 2, 3, generator=g, requires_grad=True)
    z_q = torch.randn(4, 2, 3, generator=g)
    w = torch.randn(4, 2, 3, generator=g)
    out = vq.straight_through(z_e, z_q)
    torch.testing.assert_close(out, z_q)
    loss = (w * out.pow(2)).sum()
    (grad,) = torch.autograd.grad(loss, z_e)
    torch.testing.assert_close(grad, 2 * w * z_q)  # d/dz of sum w z^2 at z = z_q


def test_losses_move_only_their_side():
    g = torch.Generator().manual_seed(2)
    z_e = torch.randn(3, 2, 4, generator=g, requires_grad=True)
    codebook = torch.randn(5, 4, generator=g, requires_grad=True)
    z_q = codebook[vq.nearest_code(z_e, codebook)]
    codebook_term, commitment = vq.vq_losses(z_e, z_q)
    expected = (z_e.detach() - z_q.detach()).pow(2).sum() / 3
    torch.testing.assert_close(codebook_term.detach(), expected)
    torch.testing.assert_close(commitment.detach(), expected)
    ge, gc = torch.autograd.grad(codebook_term, (z_e, codebook), allow_unused=True)
    assert ge is None and gc.abs().sum() > 0
    ge, gc = torch.autograd.grad(commitment, (z_e, codebook), allow_unused=True)
    assert gc is None and ge.abs().sum() > 0


def test_vq_loss_is_bce_plus_terms_and_fit_trains():
    torch.manual_seed(0)
    model = vq.VQAutoencoder(num_slots=2, num_codes=4, code_dim=3, hidden_dim=16)
    x = torch.zeros(8, 784)
    x[::2, :392] = 1.0  # two patterns: top half or bottom half bright
    x[1::2, 392:] = 1.0
    out = model(x)
    book, commit = vq.vq_losses(out.z_e, out.z_q)
    torch.testing.assert_close(
        vq.vq_loss(out, x, beta=0.5), aelib.bce_loss(out.logits, x) + book + 0.5 * commit
    )
    before = aelib.evaluate(model, x, vq.vq_loss)
    aelib.fit(
        model,
        x,
        num_epochs=200,
        batch_size=8,
        lr=1e-2,
        loss_fn=vq.vq_loss,
        verbose=0,
        # codes swap patterns early: a spike to ~10x, then it settles
        options=aelib.FitOptions(divergence_factor=None),
    )
    assert aelib.evaluate(model, x, vq.vq_loss) < 0.01 * before  # two patterns, learned exactly
    assert model.bits_per_image == 2 * math.log2(4)
    torch.testing.assert_close(
        model.reconstruct(x), torch.sigmoid(model.decode_indices(model.quantize(x)))
    )
    with pytest.raises(ValueError, match="VQAutoencoder"):
        vq.vq_loss(out.logits, x)


def test_usage_perplexity_dead_codes_by_hand():
    k = torch.tensor([0, 0, 1, 1])
    assert vq.dead_codes(k, 4) == 2
    assert vq.perplexity(k, 4) == pytest.approx(2.0)
    assert vq.perplexity(torch.arange(8), 8) == pytest.approx(8.0)
    torch.testing.assert_close(vq.code_usage(k, 3), torch.tensor([0.5, 0.5, 0.0]))


def test_reinit_dead_codes_revives_them():
    torch.manual_seed(0)
    model = vq.VQAutoencoder(num_slots=2, num_codes=8, code_dim=3, hidden_dim=16)
    with torch.no_grad():
        model.codebook[1:] = 100.0  # far from every encoder output: dead
    x = torch.rand(32, 784, generator=torch.Generator().manual_seed(4))
    assert vq.dead_codes(model.quantize(x), 8) == 7
    moved = vq.reinit_dead_codes(model, x, torch.Generator().manual_seed(5))
    assert moved == 7
    z_e = model.encode(x).reshape(-1, 3)
    # every moved code now sits exactly on an encoder output
    assert all(torch.isclose(z_e, c).all(1).any() for c in model.codebook[1:].detach())
