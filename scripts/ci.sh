#!/usr/bin/env bash
# The steps of CI, shared by .ci/run (all of them, in order) and the GitHub workflows
# (.github/workflows/test.yml and book.yml run the same steps by name).
#
#   scripts/ci.sh STEP...     STEP: setup lint test rounding build browser replay
#
# setup    Debian packages (Fashion-MNIST, Chromium; npm only if missing) and a virtual
#          environment .venv with requirements.txt (works where the system pip is refused)
# lint     ruff check + ruff format --check (pyproject.toml; notebooks/ruff.toml for notebooks)
# test     the README's python -m pytest (in parallel, see pyproject.toml), slowest tests listed
# rounding the notebooks again, strict, with this CPU's math libraries capped below its best
#          instruction set (scripts/other_cpu.py): another CPU's rounding must not change the text
# build    jupyter-book build . --all -W -n --keep-going (always runs, Chromium or not)
# browser  python -m pytest tests/browser: every built page in headless Chromium; SKIPPED,
#          loudly, when no Chromium is installed (the only step that may be skipped)
# replay   scripts/colab_replay.py: every chapter top to bottom in a Colab-like environment, on
#          other seeds (AELIB_SEED_OFFSET=1 unless set): the asserts must hold beyond one run.
#          AELIB_REPLAY_REF=setting replays the tag readers install instead of HEAD
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=${AELIB_CI_VENV:-.venv}

say() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

activate() {
  if [ -f "$VENV/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
  fi
}

find_chromium() {
  # Debian's chromium; on GitHub's Ubuntu runners, the preinstalled Google Chrome. Prints the
  # executable's full path. (type -P looks only at files on PATH: a shell function or alias of
  # the same name must not count as a browser.)
  local candidate path
  for candidate in "${AELIB_CHROMIUM:-}" chromium google-chrome google-chrome-stable; do
    [ -n "$candidate" ] || continue
    if [ -x "$candidate" ] && [ -f "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
    path=$(type -P "$candidate") && echo "$path" && return 0
  done
  return 1
}

step_setup() {
  say "Debian packages: dataset-fashion-mnist (the data), chromium (the browser tests)"
  if command -v apt-get >/dev/null && as_root apt-get update -qq; then
    as_root apt-get install -y -qq dataset-fashion-mnist >/dev/null \
      || echo "WARNING: dataset-fashion-mnist not installed: aelib will download Fashion-MNIST"
    find_chromium >/dev/null || as_root apt-get install -y -qq chromium >/dev/null \
      || echo "WARNING: chromium not installed: the browser tests will be SKIPPED"
    # npm fetches MathJax, require.js and the widget manager once (into ~/.cache/aelib-book) for
    # the book build, which serves them from _static/vendor. Debian's npm conflicts with a nodejs
    # from elsewhere, so only when there is no npm at all.
    command -v npm >/dev/null || as_root apt-get install -y -qq npm >/dev/null \
      || echo "WARNING: npm not installed: the book build needs it once for MathJax"
  else
    echo "WARNING: no apt-get (or no root): install dataset-fashion-mnist and chromium yourself"
  fi
  say "Python: a virtual environment in $VENV with requirements.txt"
  if ! python3 -m venv "$VENV"; then
    # Debian and Ubuntu ship venv's pip separately
    as_root apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV" || return 1
  fi
  activate
  python -m pip install -q --upgrade pip || return 1
  python -m pip install -q -r requirements.txt || return 1
  python -c "import aelib, sys; print('aelib from', aelib.__file__, '| python', sys.version.split()[0])"
}

step_lint() {
  activate
  say "Lint: ruff check and ruff format --check (aelib, tests, scripts, benchmarks, notebooks)"
  local status=0
  ruff check . || status=1
  ruff format --check . || status=1
  return $status
}

step_test() {
  activate
  say "Tests: python -m pytest (unit tests + every notebook through nbval, in parallel)"
  # one thread per worker: the workers already use the cores
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1} \
    python -m pytest --durations=25 --durations-min=5
}

step_rounding() {
  activate
  say "Notebooks under another CPU's rounding: python -m pytest notebooks, strict, libraries capped"
  local cap
  cap=$(python scripts/other_cpu.py) || return 1
  echo "settings: $cap"
  # shellcheck disable=SC2086
  env $cap OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m pytest notebooks --durations=10
}

step_build() {
  activate
  say "Book: jupyter-book build . --all -W -n --keep-going"
  jupyter-book build . --all -W -n --keep-going
}

step_browser() {
  activate
  say "Book in a browser: python -m pytest tests/browser"
  local browser
  if ! browser=$(find_chromium); then
    printf '\n%s\n%s\n%s\n' "**********************************************************************" \
      "SKIPPED: no Chromium, so the built pages were NOT checked in a browser" \
      "**********************************************************************"
    return 0
  fi
  AELIB_CHROMIUM="$browser" python -m pytest tests/browser -n 0 -p no:cacheprovider
}

step_replay() {
  activate
  say "Colab replay: every chapter from its install cell, in a Colab-like environment"
  # its environment holds a second torch (about 6 GB with the CUDA libraries): say what is free
  df -h . | tail -n 1 | awk '{print "disk free here: " $4 " of " $2}'
  AELIB_SEED_OFFSET=${AELIB_SEED_OFFSET:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
    python scripts/colab_replay.py --ref "${AELIB_REPLAY_REF:-head}"
}

for name in "$@"; do
  case "$name" in
    setup | lint | test | rounding | build | browser | replay) ;;
    *) echo "unknown step $name (steps: setup lint test rounding build browser replay)"; exit 2 ;;
  esac
done

failed=()
for name in "$@"; do
  start=$SECONDS
  "step_$name"
  status=$?
  echo "-- step $name: exit $status after $((SECONDS - start)) s"
  if [ $status -ne 0 ]; then
    failed+=("$name")
    # without its environment, no later step can run
    [ "$name" = setup ] && break
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "FAILED steps: ${failed[*]}"
  exit 1
fi
echo "OK: $*"
