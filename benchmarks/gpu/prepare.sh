#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what benchmarks/gpu/run.sh needs on a machine with no network:
#   .gpu/whl/   the 37 wheels the GPU machine's python3 (CPython 3.12, torch installed) lacks
#               for nbval, the notebooks and the unit tests; cp312 manylinux x86-64 builds
#   .gpu/data/FashionMNIST/raw/   a copy of Debian's Fashion-MNIST (dataset-fashion-mnist)
# Run it here, from the repository root:  bash benchmarks/gpu/prepare.sh
# Idempotent: a wheel already in .gpu/whl is not fetched again, a data file already copied is
# not copied again, and wheels that are not pinned below are removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WHL=.gpu/whl
RAW=.gpu/data/FashionMNIST/raw
DEBIAN=/usr/share/datasets/fashion-mnist
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

# name==version, as in the wheels' file names (pip accepts the underscores)
PINS="asttokens==3.0.2 comm==0.2.3 debugpy==1.8.22 executing==2.3.0 fastjsonschema==2.22.3
ipykernel==7.4.0 ipython==9.18.1 ipython_pygments_lexers==1.1.1 ipywidgets==8.1.9 jedi==0.20.1
jsonschema==4.26.0 jsonschema_specifications==2025.9.1 jupyter_client==8.10.0
jupyter_core==5.9.1 jupyterlab_widgets==3.0.17 latexcodec==3.0.1 matplotlib_inline==0.2.2
mlxtend==0.25.0 nbclient==0.11.0 nbformat==5.11.1 nbval==0.11.0 nest_asyncio2==1.7.4
parso==0.8.7 pexpect==4.9.0 platformdirs==4.14.9 prompt_toolkit==3.0.53 ptyprocess==0.7.0
pure_eval==0.2.4 pybtex==0.26.1 pyzmq==27.3.0 referencing==0.37.0 rpds_py==2026.9.1
stack_data==0.6.3 tornado==6.6.1 traitlets==5.16.1 wcwidth==0.9.4 widgetsnbextension==4.0.16"
# in order of preference (pip does not widen manylinux_2_xx tags by itself)
PLATFORMS=(manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64
    manylinux2014_x86_64 manylinux1_x86_64)

# --- data first: a missing dataset is the cheaper failure to report
for f in $FILES; do
    [ -f "$DEBIAN/$f" ] || { echo "prepare.sh: $DEBIAN/$f is missing: apt-get install dataset-fashion-mnist" >&2; exit 1; }
done
mkdir -p "$RAW" "$WHL"
for f in $FILES; do
    cmp -s "$DEBIAN/$f" "$RAW/$f" || cp "$DEBIAN/$f" "$RAW/$f"
done

# --- wheels: remove what is not pinned, fetch what is missing
declare -A PINNED=()
for pin in $PINS; do PINNED["${pin/==/-}"]=1; done
for path in "$WHL"/*.whl; do
    [ -e "$path" ] || continue
    base=$(basename "$path")
    key=$(echo "$base" | cut -d- -f1,2)
    [ -n "${PINNED[$key]:-}" ] || rm -f "$path"
done
MISSING=()
for pin in $PINS; do
    compgen -G "$WHL/${pin/==/-}-*.whl" >/dev/null || MISSING+=("$pin")
done
if ((${#MISSING[@]})); then
    PIPLOG=$(mktemp /tmp/prepare_pip.XXXXXX.log)
    if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLATFORMS[@]/#/--platform=}" --dest "$WHL" "${MISSING[@]}" \
        >"$PIPLOG" 2>&1; then
        echo "prepare.sh: pip download of ${#MISSING[@]} wheels failed (package registry unreachable?): $( (grep -E '^ERROR' "$PIPLOG" || tail -n1 "$PIPLOG") | tail -n1) [log: $PIPLOG]" >&2
        exit 1
    fi
    rm -f "$PIPLOG"
fi
n=$(compgen -G "$WHL/*.whl" | wc -l)
[ "$n" = 37 ] || { echo "prepare.sh: $WHL holds $n wheels, expected 37" >&2; exit 1; }
echo "prepare.sh: $WHL has its 37 wheels (${#MISSING[@]} fetched), $RAW its 4 files"
