"""Where the wall time of a user's training command goes: start-up (imports), compiles (count,
seconds, persistent-cache hits), compiled training, evaluation and the host work around them
(metrics, logs, checkpoints, saving), and the share inside compiled training.

The command runs in this process as a user runs it (`train_main`, the README's
`train_simple.py --scenario easy --num-steps 200000 --seeds 0 1 2`, its defaults otherwise,
written to a temporary folder). Each population chunk and evaluation is timed to its end
(`block_until_ready`), less the compiles that happened inside it, so "training" is the time
the compiled program ran; the rest of the wall is the overhead a faster device does not shrink.

    python benchmarks/overhead.py                 # the README's command (about a minute warm)
    python benchmarks/overhead.py --quick         # a small run, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()
import jax  # noqa: E402  (imports are part of what is measured)

from bb_jax import compile_cache  # noqa: E402
from bb_jax.cli import train_main  # noqa: E402
from bb_jax.machine import machine_info  # noqa: E402
from bb_jax.runtime.population import Population  # noqa: E402

IMPORTED = time.perf_counter()
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "overhead_cpu.json"


class _Timed:
    """Seconds spent inside a Population method, each call waited for and its compiles
    (`compile_cache.shared()` events during the call) taken out."""

    def __init__(self, name: str):
        self.seconds, self.calls = 0.0, 0
        method = getattr(Population, name)
        log = compile_cache.shared()

        def timed(population, *args, **kwargs):
            compiled_before = sum(c.seconds for c in log.compiles)
            start = time.perf_counter()
            out = jax.block_until_ready(method(population, *args, **kwargs))
            compiling = sum(c.seconds for c in log.compiles) - compiled_before
            self.seconds += time.perf_counter() - start - compiling
            self.calls += 1
            return out

        setattr(Population, name, timed)


def measure(argv: list[str]) -> dict:
    """Run train_main(argv) and split its wall time."""
    log = compile_cache.shared()
    training, evaluation = _Timed("run"), _Timed("evaluate")
    start = time.perf_counter()
    rc = train_main(argv)
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"the command failed with exit code {rc}")
    compiles = log.summary()
    host = wall - compiles["seconds"] - training.seconds - evaluation.seconds
    return {"startup_s": round(IMPORTED - STARTED, 3), "command_wall_s": round(wall, 3),
            "compile": compiles, "training_s": round(training.seconds, 3),
            "chunks": training.calls, "evaluation_s": round(evaluation.seconds, 3),
            "host_s": round(host, 3),
            "training_share_of_wall": round(training.seconds / (wall + IMPORTED - STARTED), 4)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20k steps, hidden 32: a smoke test")
    ap.add_argument("--num-steps", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=None, help=f"JSON (default: {DEFAULT_OUT})")
    args, extra = ap.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        command = ["--scenario", "easy", "--num-steps", str(20_000 if args.quick else
                                                              args.num_steps),
                   "--seeds", *map(str, args.seeds),
                   *(["--hidden-size", "32", "--eval-episodes", "20"] if args.quick else []),
                   *extra]
        figures = measure([*command, "--save-path", folder])
    report = {"benchmark": "overhead", "machine": machine_info(),
              "load_average": list(os.getloadavg()),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "train_simple.py " + " ".join(command), **figures}
    out = args.out or (Path(tempfile.gettempdir()) / "overhead_quick.json" if args.quick
                       else DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    return report


if __name__ == "__main__":
    main()
