"""Patch masking: whole patches, the right count, seeded; the masked loss against a pixel loop."""

import math

import pytest
import torch

import aelib
from aelib import masking as M


@pytest.mark.parametrize("patch_size, ratio", [(4, 0.75), (7, 0.5), (4, 0.0), (7, 1.0)])
def test_mask_hides_whole_patches_in_the_right_number(patch_size, ratio):
    mask = M.patch_mask(6, ratio, patch_size, generator=torch.Generator().manual_seed(0))
    grid = 28 // patch_size
    patches = mask.reshape(6, grid, patch_size, grid, patch_size)
    per_patch = patches.float().mean(dim=(2, 4))  # (6, grid, grid)
    assert ((per_patch == 0) | (per_patch == 1)).all()  # a patch is hidden whole or not at all
    assert (per_patch.sum(dim=(1, 2)) == round(ratio * grid * grid)).all()


def test_mask_is_seeded_and_differs_between_images():
    a = M.patch_mask(4, 0.5, 4, generator=torch.Generator().manual_seed(1))
    b = M.patch_mask(4, 0.5, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])
    with pytest.raises(ValueError, match="divide"):
        M.patch_mask(2, 0.5, 5)


def test_corruption_marks_hidden_pixels_and_keeps_the_rest():
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(2))
    x_in = M.PatchMasking(0.5, 7)(x, torch.Generator().manual_seed(3))
    hidden = x_in == M.MASKED
    assert hidden.float().mean().item() == pytest.approx(0.5)
    torch.testing.assert_close(x_in[~hidden], x[~hidden])


def test_masked_loss_matches_a_pixel_loop():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 784, generator=g)
    x = torch.rand(3, 784, generator=g)
    mask = M.patch_mask(3, 0.5, 4, generator=g).float()
    total = 0.0
    for b in range(3):
        for i in range(784):
            if mask[b, i]:
                p = 1 / (1 + math.exp(-logits[b, i].item()))
                total -= x[b, i].item() * math.log(p) + (1 - x[b, i].item()) * math.log(1 - p)
    loss = M.masked_bce_loss(M.MaskedOutput(logits, mask), x)
    assert loss.item() == pytest.approx(total / 3, rel=1e-5)


def test_model_reads_the_mask_and_fit_trains_it():
    torch.manual_seed(0)
    model = M.MaskedAutoencoder(aelib.Autoencoder(hidden_dim=32, latent_dim=4))
    x = torch.zeros(16, 784)
    x[::2, :392] = 1.0  # two patterns: the visible patches tell which one is hidden
    x[1::2, 392:] = 1.0
    x_in = M.PatchMasking(0.75, 4)(x, torch.Generator().manual_seed(6))
    out = model(x_in)
    torch.testing.assert_close(out.mask, (x_in == M.MASKED).float())
    torch.testing.assert_close(out.logits, model.autoencoder(x_in.clamp(min=0)))
    history = aelib.fit(
        model,
        x,
        num_epochs=20,
        batch_size=16,
        lr=1e-2,
        loss_fn=M.masked_bce_loss,
        corruption=M.PatchMasking(0.75, 4),
        progress=False,
        verbose=False,
    )
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
