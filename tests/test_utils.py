"""Seeding, draws that give the same numbers on every device, and restored random states.

There is no GPU here: the ``meta`` device (shapes, no numbers) stands in for one. A draw that
leaves a CPU generator in the same state as the same draw made for the CPU consumed the same
numbers, so the values moved to any device are the CPU's.
"""

import pytest
import torch

import aelib
from aelib import regularizers as R
from aelib.utils import draw, preserved_random_states


@pytest.mark.parametrize("kind", ["normal", "uniform"])
@pytest.mark.parametrize("own_generator", [True, False])
def test_draw_for_another_device_takes_the_cpu_numbers(kind, own_generator):
    def run(device):
        torch.manual_seed(7)
        generator = torch.Generator().manual_seed(5) if own_generator else None
        values = draw(kind, (3, 4), generator, device)
        return values, (generator or torch.default_generator).get_state()

    on_cpu, cpu_state = run("cpu")
    on_meta, meta_state = run("meta")
    assert on_meta.device.type == "meta" and on_meta.shape == (3, 4)
    assert torch.equal(meta_state, cpu_state)  # the same numbers were consumed
    torch.manual_seed(7)
    fn = torch.randn if kind == "normal" else torch.rand
    reference = torch.Generator().manual_seed(5) if own_generator else None
    assert torch.equal(on_cpu, fn(3, 4, generator=reference))
    with pytest.raises(ValueError, match="kind must be"):
        draw("poisson", (3,), None, "cpu")


@pytest.mark.parametrize(
    "corruption",
    [R.GaussianNoise(0.3), R.BlindGaussianNoise(0.3), R.MaskingNoise(0.4), R.SaltAndPepper(0.2)],
)
def test_corruptions_draw_the_same_numbers_for_every_device(corruption):
    x = torch.rand(6, 784, generator=torch.Generator().manual_seed(0))
    on_cpu = torch.Generator().manual_seed(1)
    on_meta = torch.Generator().manual_seed(1)
    cpu_result = corruption(x, on_cpu)
    meta_result = corruption(x.to("meta"), on_meta)
    assert meta_result.device.type == "meta" and meta_result.shape == cpu_result.shape
    assert torch.equal(on_meta.get_state(), on_cpu.get_state())
    assert not torch.equal(cpu_result, x)


def test_a_vaes_samples_come_from_the_cpus_global_generator():
    torch.manual_seed(0)
    vae = aelib.VariationalAutoencoder(hidden_dim=16, latent_dim=3)
    x = torch.rand(5, 784)
    torch.manual_seed(11)
    out = vae(x)
    after_cpu = torch.default_generator.get_state()
    torch.manual_seed(11)
    eps = torch.randn(5, 3)
    torch.testing.assert_close(out.logits, vae.decode(out.mu + (0.5 * out.logvar).exp() * eps))
    torch.manual_seed(11)
    on_meta = vae.to("meta")(x.to("meta"))
    assert on_meta.logits.device.type == "meta"
    assert torch.equal(torch.default_generator.get_state(), after_cpu)


def test_seed_everything_seeds_and_turns_tf32_off():
    # Saved and restored by hand: the cuBLAS flag is a computed attribute, and pytest's
    # monkeypatch (9.2 and later) would try to delete it on undo.
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = True
        generator = aelib.seed_everything(3)
        assert not matmul.allow_tf32 and not cudnn.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved
    first_global, first_own = torch.rand(3), torch.rand(3, generator=generator)
    aelib.seed_everything(3)
    assert torch.equal(torch.rand(3), first_global)
    assert torch.equal(first_own, torch.rand(3, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="non-negative integer"):
        aelib.seed_everything(-1)


def test_preserved_random_states_restores_the_cpu_state_even_after_an_error():
    torch.manual_seed(4)
    expected = torch.rand(2)
    torch.manual_seed(4)
    with pytest.raises(RuntimeError), preserved_random_states():
        torch.manual_seed(99)
        torch.rand(10)
        raise RuntimeError("inside")
    assert torch.equal(torch.rand(2), expected)


def test_numpy_integer_seeds_are_seeds_and_floats_are_not():
    import numpy as np

    assert aelib.generator(np.int64(3)).initial_seed() == aelib.generator(3).initial_seed()
    for bad in (np.float64(3), 3.0, True, np.int64(-1), "3"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            aelib.generator(bad)
