"""Why the linear models' ``decode`` returns values, not logits (issue 19, item 1).

Three of aelib's models have a linear output by nature: :class:`aelib.LinearAutoencoder`, the PCA
of :mod:`aelib.analysis` and the TopK sparse autoencoder of :mod:`aelib.sparse`. A linear
autoencoder trained with squared error spans the top-``m`` principal subspace (Baldi & Hornik
1989). This script measures, on the embedded MNIST data (4,000 train, 1,000 test images, all of
each split) with ``m = 20`` over paired seeds, what a "decode returns logits" contract would do:

(a) the linear autoencoder of chapter 2 (``bias=False``, centred on the training mean, identity
    output, :func:`aelib.mse_loss`, Adam 1e-2 with the learning rate times 0.3 every quarter of
    the 80 epochs, batch 128): the largest and the median principal angle between its decoder's
    column space and PCA's top-``m`` subspace, and its test squared error per pixel against PCA's;
    (baseline: the untrained decoder, whose largest angle is close to 90 degrees);
(b) the same encoder/decoder with a sigmoid output link trained with :func:`aelib.bce_loss`
    (decode returns logits), with biases so that the link can place its offset; and the
    literal swap (``bias=False``: the centre is then added to the logits) as a control, as is
    the identity model with biases;
(c) "logits of the values": the identity model's outputs ``x_hat`` turned into
    ``logit(clamp(x_hat, eps, 1 - eps))``: the share of outputs outside [0, 1], how the error
    of the pixels changes, how far the outputs move from PCA's projection, and the BCE those
    "logits" would be charged, for two values of the arbitrary ``eps``;
(d) the TopK sparse autoencoder of chapter 9 (classifier activations divided by their training
    maximum, 512 latents, k = 16): the share of its outputs outside [0, 1] and what clamping them
    does to the variance explained and to the classifier's accuracy on the reconstructions.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/linear_output_link.py [--epochs 80] [--seeds 0 1 2]
[--json FILE] [--no-sae]``; ``AELIB_SEED_OFFSET`` shifts every seed (the data stay the same).
The figures are written to ``benchmarks/results/linear_output_link.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import aelib
from aelib import LinearAutoencoder, classifier, sparse
from aelib.analysis import pca, principal_angles
from aelib.evidence import Spread

LATENT_DIM, BATCH_SIZE, LR, PIXELS = 20, 128, 1e-2, 784
EPS = (1e-6, 1e-3)  # the clamp of logit(clamp(x_hat, eps, 1 - eps))
RESULTS = Path(__file__).resolve().parent / "results" / "linear_output_link.json"
# name -> (bias, loss); the first is chapter 2's model
ARMS = {
    "identity, no bias (ch. 2)": (False, "mse"),
    "identity, bias (control)": (True, "mse"),
    "sigmoid, bias": (True, "bce"),
    "sigmoid, no bias (control)": (False, "bce"),
}


def train_linear(x_train, x_bar, bias, loss, seed, num_epochs):
    """Chapter 2's linear autoencoder and schedule; return it and its last-quarter loss drop."""
    aelib.seed_everything(seed)  # the initial weights
    model = LinearAutoencoder(PIXELS, LATENT_DIM, bias=bias, center=x_bar)
    initial = model.decoder.weight.detach().clone()
    optimizer = aelib.make_optimizer(model, lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=max(num_epochs // 4, 1), gamma=0.3
    )
    history = aelib.fit(
        model.to("cpu"),
        x_train,
        num_epochs=num_epochs,
        batch_size=BATCH_SIZE,
        optimizer=optimizer,
        loss_fn=aelib.mse_loss if loss == "mse" else aelib.bce_loss,
        seed=42 + seed,  # seed 0 is chapter 2's run
        verbose=0,
        on_epoch_end=lambda epoch, history: scheduler.step(),
    )
    losses = history.train_loss
    last_quarter = losses[-1 - max(num_epochs // 4, 1)] if num_epochs > 1 else losses[0]
    return model.eval(), initial, 1 - losses[-1] / last_quarter


def per_pixel(images, x):
    """Squared error per pixel, mean over images ``(N, 784)``."""
    return aelib.mse_loss(images, x).item() / PIXELS


def measure_linear(x_train, x_test, num_epochs, seeds):
    """Parts (a)-(c): one dict of lists (one value per seed) per arm, and the link's part."""
    x_bar = x_train.mean(0)
    top = pca(x_train, LATENT_DIM)
    basis = top.components.T
    pca_output = top.reconstruct(x_test)
    arms = {name: {} for name in ARMS}
    link = {}

    def add(table, key, value):
        table.setdefault(key, []).append(float(value))

    for seed in seeds:
        for name, (bias, loss) in ARMS.items():
            model, initial, drop = train_linear(x_train, x_bar, bias, loss, seed, num_epochs)
            angles = principal_angles(model.decoder.weight, basis).rad2deg()
            with torch.no_grad():
                output = model(x_test)
            pixels = output if loss == "mse" else torch.sigmoid(output)
            row = arms[name]
            add(row, "largest_angle_deg", angles.max())
            add(row, "median_angle_deg", angles.median())
            add(row, "initial_largest_angle_deg", principal_angles(initial, basis).max().rad2deg())
            add(row, "test_mse_per_pixel", per_pixel(pixels, x_test))
            add(
                row, "test_mse_over_pca", per_pixel(pixels, x_test) / per_pixel(pca_output, x_test)
            )
            add(row, "test_bce_per_image", aelib.bce_loss(output, x_test) if loss == "bce" else 0)
            add(row, "loss_drop_last_quarter", drop)
            if name == next(iter(ARMS)):  # part (c) on chapter 2's model
                clamped = output.clamp(0, 1)
                add(link, "outside_0_1", ((output < 0) | (output > 1)).float().mean())
                add(link, "min_output", output.min())
                add(link, "max_output", output.max())
                add(link, "test_mse_per_pixel", per_pixel(output, x_test))
                add(link, "test_mse_per_pixel_clamped", per_pixel(clamped, x_test))
                cut = (output - clamped).pow(2).sum() / (output - x_bar).pow(2).sum()
                add(link, "share_cut_by_clamp", cut)
                add(link, "to_pca_per_pixel", per_pixel(output, pca_output))
                add(link, "to_pca_per_pixel_clamped", per_pixel(clamped, pca_output))
                for eps in EPS:
                    logits = torch.logit(output.clamp(eps, 1 - eps))
                    add(link, f"bce_per_image_eps_{eps:g}", aelib.bce_loss(logits, x_test))
    reference = {
        "pca_test_mse_per_pixel": per_pixel(pca_output, x_test),
        "pca_outside_0_1": ((pca_output < 0) | (pca_output > 1)).float().mean().item(),
    }
    return arms, link, reference


def measure_sparse(x_train, y_train, x_test, y_test, seeds):
    """Part (d): chapter 9's TopK SAE on a classifier's scaled activations, one seed each."""
    out = {}
    for seed in seeds:
        clf = classifier.train_classifier(x_train, y_train, seed=seed)
        with torch.no_grad():
            h_train, h_test = clf.features(x_train), clf.features(x_test)
        h_scale = h_train.max().item()
        sae = sparse.TopKSparseAutoencoder(input_dim=256, num_latents=512, k=16, seed=seed)
        aelib.fit(
            sae.to("cpu"),
            h_train / h_scale,
            num_epochs=10,
            lr=1e-3,
            batch_size=BATCH_SIZE,
            loss_fn=aelib.mse_loss,
            seed=42 + seed,
            verbose=0,
        )
        h_hat = sae.reconstruct(h_test / h_scale)
        values = {
            "activation_max": h_scale,
            "test_targets_above_1": (h_test / h_scale > 1).float().mean(),
            "outside_0_1": ((h_hat < 0) | (h_hat > 1)).float().mean(),
            "min_output": h_hat.min(),
            "max_output": h_hat.max(),
            "fve": sparse.fraction_of_variance_explained(h_hat * h_scale, h_test),
            "fve_clamped": sparse.fraction_of_variance_explained(
                h_hat.clamp(0, 1) * h_scale, h_test
            ),
        }
        with torch.no_grad():
            for key, h in (("accuracy", h_hat), ("accuracy_clamped", h_hat.clamp(0, 1))):
                values[key] = (clf.head(h * h_scale).argmax(1) == y_test).float().mean()
        for key, value in values.items():
            out.setdefault(key, []).append(float(value))
    return out


def summary(values):
    spread = Spread.of(values)
    stats = {"mean": spread.mean, "std": spread.std, "min": spread.min, "max": spread.max}
    return {"values": values, **stats}


def print_table(arms, link, reference, sae):
    def show(label, values, spec):
        print(f"  {label:38s} {Spread.of(values).format(spec)}")

    pca_mse = reference["pca_test_mse_per_pixel"]
    print(f"\nPCA, m = {LATENT_DIM}: test squared error per pixel {pca_mse:.5f}")
    for name, row in arms.items():
        print(f"(a/b) {name}")
        show("largest angle to PCA (deg)", row["largest_angle_deg"], ".2f")
        show("median angle to PCA (deg)", row["median_angle_deg"], ".2f")
        show("test MSE per pixel", row["test_mse_per_pixel"], ".5f")
        show("test MSE / PCA's", row["test_mse_over_pca"], ".3f")
        show("loss drop over the last quarter", row["loss_drop_last_quarter"], ".2%")
    initial = Spread.of(arms[next(iter(ARMS))]["initial_largest_angle_deg"])
    print(f"  (untrained decoders: largest angle {initial.format('.1f')})")
    print("(c) logit(clamp(x_hat)) of chapter 2's model, test set")
    show("outputs outside [0, 1]", link["outside_0_1"], ".2%")
    print(f"  {'(PCA reconstructions outside [0, 1])':38s} {reference['pca_outside_0_1']:.2%}")
    show("lowest output", link["min_output"], ".2f")
    show("highest output", link["max_output"], ".2f")
    show("MSE per pixel, values", link["test_mse_per_pixel"], ".5f")
    show("MSE per pixel, clamped to [0, 1]", link["test_mse_per_pixel_clamped"], ".5f")
    show("share of ||x_hat - x_bar||^2 clamped", link["share_cut_by_clamp"], ".2%")
    show("distance to PCA per pixel, values", link["to_pca_per_pixel"], ".2e")
    show("distance to PCA per pixel, clamped", link["to_pca_per_pixel_clamped"], ".2e")
    for eps in EPS:
        show(f"BCE per image of logits, eps = {eps:g}", link[f"bce_per_image_eps_{eps:g}"], ".1f")
    show("BCE per image, sigmoid model", arms["sigmoid, bias"]["test_bce_per_image"], ".1f")
    if sae:
        print("(d) TopK SAE of chapter 9 on activations / training max, test set")
        show("largest training activation h_scale", sae["activation_max"], ".2f")
        show("test targets above 1", sae["test_targets_above_1"], ".2%")
        show("outputs outside [0, 1]", sae["outside_0_1"], ".2%")
        show("lowest output", sae["min_output"], ".2f")
        show("highest output", sae["max_output"], ".2f")
        show("variance explained, values", sae["fve"], ".4f")
        show("variance explained, clamped", sae["fve_clamped"], ".4f")
        show("accuracy on h_hat, values", sae["accuracy"], ".2%")
        show("accuracy on h_hat, clamped", sae["accuracy_clamped"], ".2%")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80, help="epochs of each linear model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the figures")
    parser.add_argument("--no-sae", action="store_true", help="skip part (d)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("a spread needs at least two seeds")
    start = time.perf_counter()
    data = aelib.load_dataset("mnist", source="embedded")
    x_train = aelib.to_float(data.x_train).reshape(-1, PIXELS)  # all of each split
    x_test = aelib.to_float(data.x_test).reshape(-1, PIXELS)
    arms, link, reference = measure_linear(x_train, x_test, args.epochs, args.seeds)
    sae = None
    if not args.no_sae:
        sae = measure_sparse(x_train, data.y_train, x_test, data.y_test, args.seeds)
    seconds = time.perf_counter() - start
    print_table(arms, link, reference, sae)
    print(f"\n{seconds:.0f} s on {torch.get_num_threads()} thread(s)")
    result = {
        "command": " ".join(["python", "benchmarks/linear_output_link.py", *argv]),
        "data": f"mnist, embedded: {len(x_train)} train + {len(x_test)} test images (all)",
        "latent_dim": LATENT_DIM,
        "epochs": args.epochs,
        "optimizer": f"Adam lr {LR}, x0.3 every {max(args.epochs // 4, 1)} epochs, batch 128",
        "seeds": args.seeds,
        "seed_offset": aelib.seed_offset(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seconds": seconds,
        "reference": reference,
        "arms": {n: {k: summary(v) for k, v in row.items()} for n, row in arms.items()},
        "logits_of_values": {k: summary(v) for k, v in link.items()},
        "sparse": {k: summary(v) for k, v in sae.items()} if sae else None,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
