#!/usr/bin/env bash
# The full benchmark suite on a CUDA machine, in one command (< 8 minutes on one H100/H200):
#
#     bash benchmarks/gpu_run.sh OUT_DIR
#
# Writes OUT_DIR/results.json and the PNG plots. Uses the machine's own jax/flax/optax/chex and
# bb_jax from this checkout (no install). GPU images often lack optuna (and plotly, sqlalchemy):
# carry them as wheels in .whl/ (see docs/PERFORMANCE.md for the pip download command); they are
# installed into /tmp/site here. Without optuna the tuner benchmark is skipped, the rest runs.
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_run.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
py=${PYTHON:-python3}
if ! "$py" -c "import optuna" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
"$py" -c "import jax; print('devices:', jax.devices())"
"$py" benchmarks/run_all.py --full --gpu --out "$out/results.json" --plots-dir "$out" \
  2>&1 | tee "$out/log.txt"
