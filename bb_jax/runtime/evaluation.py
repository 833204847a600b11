"""A saved policy on fresh episodes against chosen opponents, beside the random policy and
every heuristic in the learner's seat (`baselines`), through the same evaluation scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import envs, wall_time
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.baselines import BASELINES, batch_returns
from bb_jax.runtime.saved_runs import SavedRun
from bb_jax.stats import mean_ci95


def _policy(run: SavedRun, scenario: str, kinds: tuple[str, ...] | None) -> PPO:
    """The run's network in an env that plays `scenario` against the chosen opponents."""
    return PPO(run.config.replace(scenario=scenario, opponents=kinds or run.config.opponents))


def _member_params(run: SavedRun, scenario: str) -> dict[int, dict]:
    """{seed: parameters} the run trained on `scenario`, else on its first scenario."""
    trained = {s for _, s in run.params}
    own = scenario if scenario in trained else next(iter(run.params))[1]
    return {seed: params for (seed, s), params in sorted(run.params.items()) if s == own}


def record_episode(run: SavedRun, scenario: str, kinds: tuple[str, ...] | None,
                   episodes: int, key, greedy: bool = False) -> dict:
    """Episode 0 of the first seed's evaluation (the same episode `policy_returns` counts):
    {"seed", "return", "houses" int[T+1, 10], "actions" int[T, N, 2] (house, mode of every
    agent each night), "reward" float[T]} for its T nights."""
    ppo = _policy(run, scenario, kinds)
    seed, params = next(iter(_member_params(run, scenario).items()))
    total, trace = jax.jit(lambda p: ppo.evaluate(p, key, episodes, greedy, record=True))(params)
    alive = np.asarray(trace["alive"][:, 0])
    info = {name: np.asarray(trace["info"][name][:, 0])
            for name in ("houses_before", "houses", "actions")}
    houses = np.concatenate([info["houses_before"][:1], info["houses"][alive]])
    return {"seed": seed, "return": float(total[0]), "houses": houses.astype(int),
            "actions": info["actions"][alive].astype(int),
            "reward": np.asarray(trace["reward"][:, 0])[alive]}


def policy_returns(run: SavedRun, scenario: str, kinds: tuple[str, ...] | None,
                   episodes: int, key, greedy: bool = False) -> dict[int, np.ndarray]:
    """{seed: float32[episodes]}: each seed's network on the same fresh episodes of
    `scenario` (the parameters it trained on that scenario, else on the run's first)."""
    ppo = _policy(run, scenario, kinds)

    members = _member_params(run, scenario)
    seeds = list(members)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members.values())
    play = jax.jit(jax.vmap(lambda p: ppo.evaluate(p, key, episodes, greedy)))
    with wall_time.part("evaluation"):
        returns = np.asarray(play(stacked))
    return {seed: returns[i] for i, seed in enumerate(seeds)}


def evaluate_run(run: SavedRun, scenario: str, kinds: tuple[str, ...] | None, episodes: int,
                 seed: int = 0, greedy: bool = False) -> dict:
    """The policy's mean return (95% CI over the run's seeds, over episodes with one seed)
    and each baseline's (95% CI over episodes), all on episodes of the same key, with the
    lines that print them."""
    envs.check_game(run.config.env, "the heuristic baselines and opponents")
    key = jax.random.PRNGKey(seed)
    per_seed = policy_returns(run, scenario, kinds, episodes, key, greedy)
    means = [float(r.mean()) for r in per_seed.values()]
    if len(means) > 1:
        mean, ci = mean_ci95(means)
        over = f"{len(means)} seeds"
    else:
        mean, ci = mean_ci95(next(iter(per_seed.values())))
        over = f"{episodes} episodes"
    opponents = _policy(run, scenario, kinds).env.opponent_kinds
    with wall_time.part("evaluation"):
        rows = batch_returns(list(BASELINES), [scenario] * len(BASELINES), episodes, key,
                             run.config.num_opponents, opponents, run.config.max_steps)
    baselines = {name: dict(zip(("mean", "ci95"), mean_ci95(row), strict=True))
                 for name, row in zip(BASELINES, rows, strict=True)}
    mode = "greedy" if greedy else "sampled"
    lines = [f"{scenario} against {', '.join(opponents)} ({episodes} fresh episodes, key "
             f"{seed}):",
             f"  policy ({mode}): {mean:8.2f} +/- {ci:.2f} (95% CI over {over})"]
    lines += [f"  {name:<15} {b['mean']:8.2f} +/- {b['ci95']:.2f} (in the learner's seat)"
              for name, b in sorted(baselines.items(), key=lambda kv: -kv[1]["mean"])]
    return {"scenario": scenario, "opponents": list(opponents), "episodes": episodes,
            "greedy": greedy,
            "policy": {"mean": mean, "ci95": ci, "per_seed": dict(zip(
                map(str, per_seed), means, strict=True))},
            "baselines": baselines, "lines": lines}
