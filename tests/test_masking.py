"""Patch masking: whole patches, the right count, seeded; the masked loss against a pixel loop."""

import math
import subprocess
import sys

import pytest
import torch

import aelib
from aelib import masking as M
from aelib.utils import draw


def reshape_patch_mask(n, ratio, patch_size, side, generator):
    """patch_mask as written before einops: a view of 5 axes, expanded, then flattened."""
    grid = side // patch_size
    num_patches = grid * grid
    order = draw("uniform", (n, num_patches), generator, "cpu").argsort(dim=1)
    hidden = torch.zeros(n, num_patches, dtype=torch.bool)
    hidden.scatter_(1, order[:, : round(ratio * num_patches)], True)
    pixels = hidden.reshape(n, grid, 1, grid, 1).expand(n, grid, patch_size, grid, patch_size)
    return pixels.reshape(n, side * side)


@pytest.mark.parametrize(
    "n, ratio, patch_size, side",
    [(16, 0.75, 4, 28), (9, 0.5, 7, 28), (5, 0.3, 2, 8), (4, 0.6, 1, 5), (3, 1.0, 28, 28)]
    + [(0, 0.5, 4, 28), (7, 0.25, 3, 12)],
)
def test_einops_mask_is_the_reshape_formula_bit_for_bit(n, ratio, patch_size, side):
    for seed in range(5):
        old = reshape_patch_mask(n, ratio, patch_size, side, torch.Generator().manual_seed(seed))
        new = M.patch_mask(n, ratio, patch_size, side, torch.Generator().manual_seed(seed))
        assert new.dtype == old.dtype == torch.bool and new.shape == old.shape
        assert torch.equal(new, old)


def test_importing_aelib_loads_neither_torch_nor_einops():
    code = "import sys, aelib; print(sorted({'torch', 'einops'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
        verbose=0,
    )
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
