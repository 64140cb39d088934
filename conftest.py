"""Root pytest configuration, shared by the unit tests and the notebooks run through nbval."""

import os

import matplotlib

# nbval starts the notebooks' Jupyter kernels with this process's environment. A MPLBACKEND such
# as "Agg" would replace the kernels' inline backend, so figure cells would lose the outputs
# stored with them and fail. The kernels get their default; this process draws off screen.
os.environ.pop("MPLBACKEND", None)
matplotlib.use("Agg")

# The notebooks' stored outputs were computed on a CPU, and a GPU gives other last digits: make
# aelib.pick_device("auto") choose the CPU in the kernels too, unless the caller chose otherwise.
os.environ.setdefault("AELIB_DEVICE", "cpu")

# The stored outputs were recorded with one thread per kernel: a seeded CPU run then gives the
# same digits whatever the machine's core count, and two notebooks can run side by side
# (pytest-xdist) on two cores without oversubscribing them.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# pytest-xdist hands each worker whole files (--dist loadfile). Started heaviest first, the two
# workers finish close together (longest-processing-time-first scheduling); xdist's own order (by
# number of tests) started the command-line tests, 100 s of subprocesses, near the end. Seconds
# of one worker's time, measured with --durations=0 on 2 cores, 2026-11-29; files not listed
# follow in collection order.
HEAVIEST_FIRST = (
    "notebooks/08_variational_autoencoder.ipynb",  # 100 s
    "notebooks/06_applications.ipynb",  # 101 s
    "notebooks/09_autoencoders_today.ipynb",  # 100 s
    "notebooks/04_regularization.ipynb",  # 88 s
    "notebooks/03_parameterization.ipynb",  # 86 s
    "notebooks/01_first_autoencoder.ipynb",  # 82 s
    "notebooks/05_optimization.ipynb",  # 80 s
    "notebooks/02_encoder_decoder_objective.ipynb",  # 40 s
    "tests/test_cli_safety.py",  # 39 s
    "notebooks/07_latent_explorer.ipynb",  # 38 s
    "tests/test_cli.py",  # 37 s
)


def pytest_collection_modifyitems(config, items):
    rank = {config.rootpath / path: i for i, path in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))
