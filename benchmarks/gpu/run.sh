#!/usr/bin/env bash
# One GPU session's checks, for a machine with one CUDA GPU and no network, where `python3` has
# torch (CPython 3.12: the carried wheels are cp312 manylinux x86-64). How to run it:
#   1. here (CPU machine, network to the package registry), from the repository root:
#        bash benchmarks/gpu/prepare.sh      # fills .gpu/whl (37 wheels) and .gpu/data (ignored)
#   2. the device tool's `run` with  command="bash benchmarks/gpu/run.sh", carry=[".gpu"],
#      timeout_s=560  (GPU_BUDGET_S, default 500 s, bounds the whole run inside that).
# What comes back in $OUT: gpu_log.txt (everything, with a summary of each stage's rc and time),
# benchmark_gpu.md and gpu.json (the benchmark's table and figures, for book/generated/ and
# benchmarks/results/), checks.json (stage c's checks), cli_metrics.json (the three CLI runs),
# notebooks.txt and unit_tests.txt (the pytest outputs of stages e and b).
#
# Stages, most valuable first; each runs under `timeout`, logs into $OUT/gpu_log.txt, and a
# failing stage never stops the next one:
#   a  facts + install the carried wheels into /tmp/site (PYTHONPATH=$PWD:/tmp/site)
#   d  benchmarks/seed_vs_aelib.py --device cuda --epochs 3 --repeats 5 (the book's command)
#   c  benchmarks/gpu/checks.py (draws, epoch order, CPU vs CUDA losses, CUDA twice) and the CLI
#      on CUDA plain, --amp, --compile reduce-overhead (2 epochs of Fashion-MNIST each)
#   e  the chapters under nbval-lax with AELIB_DEVICE=cuda   } in parallel: 8 + 8 workers
#   b  the unit tests (conftest keeps AELIB_DEVICE=cpu)      } on 16 cores
# The whole run stays inside GPU_BUDGET_S (default 500 s): a stage gets at most what is left.
#
# DRYRUN=1 (on a CPU machine, in the project's venv: DRYRUN=1 PYTHON=python bash
# benchmarks/gpu/run.sh): --device cpu, 1 epoch, 1 repeat, one light notebook, the unit tests
# only collected; nothing tracked is written (outputs in /tmp/gpu_out and /tmp/gpu_dry).

set -o pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
DRYRUN=${DRYRUN:-0}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
LOG=$OUT/gpu_log.txt
BUDGET=${GPU_BUDGET_S:-500}
START=$(date +%s)
PY=${PYTHON:-python3}
SUMMARY=()
STAGES=" ${STAGES:-a d c e b} "  # e.g. STAGES="c e" to run only those
want() { [[ $STAGES == *" $1 "* ]]; }
unset AELIB_SEED_OFFSET AELIB_DATA_DIR MPLBACKEND

if [ "$DRYRUN" = 1 ]; then
    DEV=cpu EPOCHS=1 BENCH="--epochs 1 --repeats 1" SCRATCH=/tmp/gpu_dry
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # a shared 2-core machine: no spinning threads
    BENCH_MD=$SCRATCH/benchmark_gpu.md BENCH_JSON=$SCRATCH/gpu.json
else
    DEV=cuda EPOCHS=2 BENCH="--epochs 3 --repeats 5" SCRATCH=/tmp/gpu_scratch
    # the paths the book's command names (book/scaling.md), in this copy of the tree
    BENCH_MD=book/generated/benchmark_gpu.md BENCH_JSON=benchmarks/results/gpu.json
fi
mkdir -p "$SCRATCH"
export ROOT OUT DEV EPOCHS PY SCRATCH

elapsed() { echo $(($(date +%s) - START)); }

# stage NAME SECONDS COMMAND...: run COMMAND under timeout min(SECONDS, what the budget leaves)
stage() {
    local name=$1 limit=$2 left t0 rc
    shift 2
    left=$((BUDGET - $(elapsed) - 5))
    ((left < limit)) && limit=$left
    if ((limit < 15)); then
        echo "=== [$name] SKIPPED: $(elapsed)s of the ${BUDGET}s budget used" | tee -a "$LOG"
        SUMMARY+=("$name: skipped (budget)")
        return 0
    fi
    echo "=== [$name] start at $(elapsed)s, limit ${limit}s" | tee -a "$LOG"
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=$?
    local note=""
    ((rc == 124 || rc == 137)) && note=" TIMED OUT"
    echo "=== [$name] rc=$rc in $(($(date +%s) - t0))s$note" | tee -a "$LOG"
    SUMMARY+=("$name: rc=$rc in $(($(date +%s) - t0))s$note")
    return 0
}

# ------------------------------------------------------------------ a: facts, wheels
stage_a() {
    echo "uname: $(uname -srm); nproc: $(nproc); $(free -g 2>/dev/null | sed -n 2p)"
    nvidia-smi -L || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    command -v gcc g++ nvcc || true
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], sys.executable);
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available());
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
    if [ "$DRYRUN" = 1 ]; then
        echo "DRYRUN: wheels not installed (this venv has everything; they are cp312)"
    else
        compgen -G ".gpu/whl/*.whl" >/dev/null \
            || { echo "no wheels in .gpu/whl: run bash benchmarks/gpu/prepare.sh, carry .gpu"; return 1; }
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .gpu/whl/*.whl || return 1
    fi
    "$PY" -c 'import nbval, ipykernel, IPython, nbclient, nbformat, jupyter_client, zmq, mlxtend, ipywidgets, pybtex
print("imports ok: ipykernel", ipykernel.__version__, "IPython", IPython.__version__, "nbformat", nbformat.__version__)'
    "$PY" -m pip list 2>/dev/null | grep -iE '^(pytest|pytest-xdist|pytest-timeout|numpy|pandas|matplotlib|scikit-learn|scipy|torchvision|tqdm|pillow|pyyaml|python-dateutil|triton) '
}
if [ "$DRYRUN" = 1 ]; then export PYTHONPATH=$ROOT; else export PYTHONPATH=$ROOT:/tmp/site; fi
export -f stage_a
export DRYRUN
echo "gpu run: $(date -u +%FT%TZ), DRYRUN=$DRYRUN, budget ${BUDGET}s, PYTHONPATH=$PYTHONPATH" | tee "$LOG"
want a && stage a-facts 120 bash -c stage_a

# ------------------------------------------------------------------ d: the benchmark
# Fashion-MNIST: the carried copy goes where Debian puts it (source 'debian', as in the CPU
# table); where that folder cannot be written, AELIB_DATA_DIR names the copy (source 'dir').
DEBIAN=/usr/share/datasets/fashion-mnist
BENCH_ENV=()
if want d && [ ! -f $DEBIAN/train-images-idx3-ubyte.gz ]; then
    if mkdir -p $DEBIAN 2>/dev/null && cp .gpu/data/FashionMNIST/raw/*.gz $DEBIAN/ 2>/dev/null; then
        echo "Fashion-MNIST copied to $DEBIAN" | tee -a "$LOG"
    else
        BENCH_ENV=(env AELIB_DATA_DIR="$ROOT/.gpu/data")
        echo "cannot write $DEBIAN: AELIB_DATA_DIR=$ROOT/.gpu/data" | tee -a "$LOG"
    fi
fi
want d && rm -f "$BENCH_MD" "$BENCH_JSON"  # never hand back a stale table (the tree holds one)
# about 90 s expected on an H200 (the seed pipeline's CPU-side DataLoader dominates)
want d && stage d-benchmark 210 "${BENCH_ENV[@]}" env AELIB_OFFLINE=1 "$PY" benchmarks/seed_vs_aelib.py \
    --device "$DEV" $BENCH --markdown "$BENCH_MD" --json "$BENCH_JSON"
if want d; then
    cp "$BENCH_MD" "$OUT/benchmark_gpu.md" 2>/dev/null && cat "$BENCH_MD" >>"$LOG"
    cp "$BENCH_JSON" "$OUT/gpu.json" 2>/dev/null
fi

# ------------------------------------------------------------------ c: checks and the CLI
want c && stage c-checks 100 "$PY" benchmarks/gpu/checks.py --device "$DEV" --epochs "$EPOCHS" --json "$OUT/checks.json"

cli() {  # cli NAME EXTRA-FLAGS...: 2 epochs (DRYRUN: 1) of Fashion-MNIST through python -m aelib
    local name=$1
    shift
    AELIB_OFFLINE=1 "$PY" -m aelib train --device "$DEV" --dataset fashion-mnist \
        --data-dir .gpu/data --epochs "$EPOCHS" --out "$SCRATCH/cli_$name" --overwrite --quiet "$@" \
        || return
    "$PY" - "$SCRATCH/cli_$name/metrics.json" "$name" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"cli {sys.argv[2]}: {m['device_name']}, amp={m['amp']}, compile={m['compile']}, "
      f"seconds per epoch {[round(s, 2) for s in m['epoch_seconds']]}, "
      f"wall {m['wall_seconds']:.1f} s, test losses {[round(v, 4) for v in m['test_loss']]}, "
      f"final {m['final_test_loss']}")
EOF
}
export -f cli
want c && stage c-cli-plain 60 bash -c 'cli plain'
want c && stage c-cli-amp 60 bash -c 'cli amp --amp'
if [ "$DRYRUN" = 1 ]; then  # compiling on 2 shared cores takes minutes: check the flags only
    want c && stage c-cli-compile 60 bash -c 'EPOCHS=0 cli compile --compile reduce-overhead'
else
    want c && stage c-cli-compile 150 bash -c 'cli compile --compile reduce-overhead'
fi
want c && "$PY" - "$SCRATCH" "$OUT/cli_metrics.json" <<'EOF' 2>&1 | tee -a "$LOG"
import json, pathlib, sys
runs = {}
for name in ("plain", "amp", "compile"):
    path = pathlib.Path(sys.argv[1]) / f"cli_{name}" / "metrics.json"
    if path.is_file():
        m = json.loads(path.read_text())
        runs[name] = {k: m.get(k) for k in ("device_name", "amp", "compile", "epoch_seconds",
                                             "wall_seconds", "train_loss", "test_loss",
                                             "final_test_loss", "versions")}
pathlib.Path(sys.argv[2]).write_text(json.dumps(runs, indent=2) + "\n")
print("cli runs with metrics:", ", ".join(runs) or "none")
EOF

# ------------------------------------------------------------------ e and b, side by side
# Unit tests left out, and why:
#   tests/browser/               Chromium and a built book (jupyter-book): neither is there
#   tests/test_local_jupyter.py  runs `jupyter labextension list`: JupyterLab is not carried
#   tests/test_colab_replay.py   needs the git history (git rev-parse/show HEAD, HEAD~1; the copy
#                                may have no .git) and asserts the recorded torch 2.14.1 (there
#                                2.11.0); one test runs python with env={PATH} only, which loses
#                                PYTHONPATH (/tmp/site's IPython)
# Kept: test_workflows.py and test_repository_setting.py read files and run bash/python on them
# (no network, no browser); test_notebook_hygiene.py needs pybtex, which is carried.
TIMEOUT_FLAG=""
"$PY" -c 'import pytest_timeout' 2>/dev/null && TIMEOUT_FLAG="--timeout=150"
UNIT=("$PY" -m pytest tests -o addopts= -p no:cacheprovider -q -ra --maxfail=10 $TIMEOUT_FLAG
    --ignore=tests/browser --ignore=tests/test_local_jupyter.py --ignore=tests/test_colab_replay.py)
if [ "$DRYRUN" = 1 ]; then
    NB=(env AELIB_DEVICE=cpu "$PY" -m pytest --nbval-lax --nbval-current-env
        notebooks/02_encoder_decoder_objective.ipynb -o addopts= -p no:cacheprovider -n 0 -q -ra)
    UNIT+=(-n 0 --collect-only)
else
    NB=(env AELIB_DEVICE=cuda "$PY" -m pytest --nbval-lax --nbval-current-env notebooks
        -o addopts= -p no:cacheprovider -n 8 --dist loadfile -q -ra)
    UNIT+=(-n 8 --dist loadfile)
fi
LEFT=$((BUDGET - $(elapsed) - 15))
((LEFT > 240)) && LEFT=240
if ! want e && ! want b; then
    :
elif ((LEFT < 30)); then
    echo "=== [e-notebooks, b-unit-tests] SKIPPED: $(elapsed)s used" | tee -a "$LOG"
    SUMMARY+=("e-notebooks, b-unit-tests: skipped (budget)")
else
    echo "=== [e-notebooks] and [b-unit-tests] start at $(elapsed)s, side by side, limit ${LEFT}s" \
        | tee -a "$LOG"
    side() {  # side NAME FILE COMMAND...: one of the two, its output in $OUT/FILE
        local name=$1 file=$2 t0 rc
        shift 2
        t0=$(date +%s)
        timeout -k 10 "$LEFT" "$@" >"$OUT/$file" 2>&1
        rc=$?
        echo "=== [$name] rc=$rc in $(($(date +%s) - t0))s$( ((rc == 124 || rc == 137)) && echo ' TIMED OUT')" \
            >>"$OUT/$file"
    }
    want e && side e-notebooks notebooks.txt "${NB[@]}" &
    want b && side b-unit-tests unit_tests.txt "${UNIT[@]}" &
    wait
    for f in notebooks unit_tests; do
        [ -f "$OUT/$f.txt" ] || continue
        echo "=== output of $f (also in $f.txt)" | tee -a "$LOG"
        if [ "$DRYRUN" = 1 ] && [ $f = unit_tests ]; then tail -n 5 "$OUT/$f.txt"; else cat "$OUT/$f.txt"; fi \
            | tee -a "$LOG" | tail -n 40
        SUMMARY+=("$(tail -n 1 "$OUT/$f.txt")")
    done
fi

echo "=== summary after $(elapsed)s" | tee -a "$LOG"
printf '  %s\n' "${SUMMARY[@]}" | tee -a "$LOG"
[ -f "$OUT/checks.json" ] && "$PY" -c "import json; d = json.load(open('$OUT/checks.json'))
print('  checks failed:', [k for k, v in d['checks'].items() if not v['ok']] or 'none')" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit 0
