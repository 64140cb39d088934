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
