#!/usr/bin/env bash
# The GPU check in one command, sized for 8 minutes on one H100/H200:
#
#     bash benchmarks/gpu_run.sh OUT_DIR
#
# 1. the exact-agreement game tests (tests/test_reference_agreement.py) on the device, each
#    compared with the plain-Python reference within the tests' own tolerances (<= 2 minutes);
# 2. the benchmark suite at GPU sizes (run_all.py --full --gpu: env, training with populations
#    of 1..1024, the per-step baseline, a quick tuning sweep; each benchmark under its own time
#    budget, <= 5.5 minutes in all).
# Writes OUT_DIR/devices.txt, game_tests.txt, results.json, log.txt and the PNG plots; exits 1
# if the game tests or a benchmark failed (the rest still runs).
#
# BB_JAX_DRY_RUN=1 runs the same steps at tiny sizes on any backend (one game configuration,
# run_all.py --quick): the test suite's CPU dry run (tests/test_gpu_script.py).
#
# Uses the machine's own jax/flax/optax/chex and bb_jax from this checkout (no install). GPU
# images often lack optuna (and plotly, sqlalchemy): carry them as wheels in .whl/ (see
# docs/PERFORMANCE.md for the pip download command); they are installed into /tmp/site here.
# Without optuna the tuner benchmark is recorded as failed, the rest runs.
set -uo pipefail
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
if [[ ${BB_JAX_DRY_RUN:-0} == 1 ]]; then
  game_tests=(tests/test_reference_agreement.py -k "trajectories_identical and N2-")
  suite=(--quick)
  game_budget_s=600  # a loaded CI CPU compiles slowly
else
  game_tests=(tests/test_reference_agreement.py)
  suite=(--full --gpu)
  game_budget_s=120
fi
status=0
"$py" -c "import jax; print('backend:', jax.default_backend(), 'devices:', jax.devices())" \
  | tee "$out/devices.txt" || status=1
timeout "$game_budget_s" "$py" -m pytest -q -p no:cacheprovider "${game_tests[@]}" 2>&1 \
  | tee "$out/game_tests.txt" || status=1
"$py" benchmarks/run_all.py "${suite[@]}" --out "$out/results.json" --plots-dir "$out" 2>&1 \
  | tee "$out/log.txt" || status=1
echo "gpu_run.sh: exit $status" | tee -a "$out/log.txt"
exit $status
