"""Cost of the masked (shape-padded) training path against the exact one at one shape.

Every member of a population trains either through the exact program of its (hidden size,
batch size) or through the padded program of a `ShapeChoices` (`--shapes padded`), which
masks each member to its own shape (`bb_jax.agent.shapes`). With a one-shape `ShapeChoices`
the two compute the same thing; this measures what the masking itself costs, and whether the
two paths give the same numbers, to decide whether the exact path could go (docs/PERFORMANCE.md,
"One masked path or two"). Two members (one per host device of a 2-core CPU), the default
hyperparameters, each case compiled once and timed over `--repeats` calls; cases alternate
exact / padded so that drifting load hits both. Writes JSON.

    python benchmarks/masked_path.py                     # hidden 64 128, batch 512
    python benchmarks/masked_path.py --quick             # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bb_jax import devices

devices.use_host_devices()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bb_jax.agent.config import (  # noqa: E402
    PPOConfig,
    ShapeChoices,  # noqa: E402
    stack_hyperparams,
)
from bb_jax.machine import machine_info  # noqa: E402
from bb_jax.runtime.population import Population  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "masked_path_cpu.json"


def population(hidden: int, batch: int, members: int, padded: bool) -> Population:
    config = PPOConfig(hidden_size=hidden, batch_size=batch, total_steps=batch)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(members)])
    rows = stack_hyperparams([{}] * members)
    if not padded:
        return Population(config, rows, keys)
    choices = ShapeChoices((hidden,), (batch,))
    shapes = jax.tree.map(lambda *x: jnp.stack(x), *[choices.member(hidden, batch)] * members)
    return Population(config, rows, keys, shapes=choices, member_shapes=shapes)


def time_case(hidden: int, batch: int, members: int, padded: bool, updates: int,
              repeats: int) -> dict:
    """Compile (first call) and time `repeats` calls of `updates` updates."""
    pop = population(hidden, batch, members, padded)
    until = [updates * (repeats + 1)] * members if padded else None
    t0 = time.perf_counter()
    jax.block_until_ready(pop.run(updates, until))
    first_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        if padded:
            until = [updates * (i + 2)] * members
        t0 = time.perf_counter()
        jax.block_until_ready(pop.run(updates, until))
        times.append(time.perf_counter() - t0)
    steps = members * updates * batch
    return {"hidden_size": hidden, "batch_size": batch, "members": members,
            "path": "padded" if padded else "exact", "updates_per_call": updates,
            "first_call_s": first_s, "call_s": times,
            "env_steps_per_s": steps / statistics.median(times)}


def largest_difference(hidden: int, batch: int, updates: int, members: int) -> float:
    """The largest absolute difference between the parameters of the two paths after
    `updates` updates from the same keys (0.0: bit-identical). With one member per device the
    two programs have coincided bit for bit; with several vmapped on a device they have not."""
    exact = population(hidden, batch, members, False)
    padded = population(hidden, batch, members, True)
    exact.run(updates)
    padded.run(updates, [updates] * members)
    return max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(exact.state.params), jax.tree.leaves(padded.state.params),
                   strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--updates", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=4, help="alternations of exact and padded")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.hidden, args.updates, args.repeats, args.rounds = [32], 2, 1, 1
    out = args.out or (Path("/tmp/masked_path_quick.json") if args.quick else DEFAULT_OUT)
    cases = []
    for hidden in args.hidden:
        for _ in range(args.rounds):
            for padded in (False, True):
                case = time_case(hidden, args.batch_size, args.members, padded, args.updates,
                                 args.repeats)
                print(f"hidden {hidden:>3} {case['path']:>6}: "
                      f"{case['env_steps_per_s']:>9,.0f} env-steps/s", flush=True)
                cases.append(case)
    ratios = {}
    for hidden in args.hidden:
        rate = {path: statistics.median(c["env_steps_per_s"] for c in cases
                                        if c["hidden_size"] == hidden and c["path"] == path)
                for path in ("exact", "padded")}
        ratios[str(hidden)] = rate["padded"] / rate["exact"]
    # two members per device: how a population of a cohort or a run of seeds is laid out
    members = 2 * jax.local_device_count()
    differences = {str(h): largest_difference(h, args.batch_size, args.updates, members)
                   for h in args.hidden}
    report = {"machine": machine_info(), "settings": vars(args) | {"out": str(out)},
              "cases": cases, "padded_over_exact": ratios,
              "largest_parameter_difference": differences,
              "difference_members": members}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print("padded / exact env-steps/s:", {h: round(r, 3) for h, r in ratios.items()})
    print(f"largest parameter difference after {args.updates} updates ({members} members):",
          differences)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
