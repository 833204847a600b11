"""Compute-aware tuning: FLOPs per update from XLA's cost analysis, FLOP budgets (equal
compute per trial, deterministic), the return-and-cost study with its validated Pareto front,
offline plots and the budget flags' usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_helpers import SMALL, write_enqueue_file

from bb_jax.agent.config import PPOConfig
from bb_jax.cli import tune_main
from bb_jax.runtime.cohorts import CohortTrainer, tail_piece
from bb_jax.runtime.cost import CompileClock, flops_per_env_step, update_flops
from bb_jax.runtime.members import MemberSpec
from bb_jax.tuning.validation import cheapest_not_worse

CHEAP = {"hidden_size": 64, "batch_size": 512, "learning_rate": 5e-4, "num_epochs": 3,
         "clip_epsilon": 0.2, "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99,
         "gae_lambda": 0.95}


def test_update_flops_count_every_epoch_and_follow_the_network():
    config = PPOConfig(hidden_size=64, batch_size=512)
    three, six = update_flops(config, 3), update_flops(config, 6)
    nine = update_flops(config, 9)
    assert six > three and nine - six == pytest.approx(six - three, rel=1e-9)
    assert update_flops(config, 99) == update_flops(config, config.max_epochs)
    # two 2-layer torsos: ~4x the matrix work per unit of hidden size doubling
    wide = flops_per_env_step(config.replace(hidden_size=256), 3)
    assert 6 < wide / flops_per_env_step(config, 3) < 20


def test_each_term_of_an_update_costs_what_a_hand_count_gives():
    """Hidden 512 (matrix products dominate), each term on its own, at a tolerance (7%) well
    under the smallest term (the advantages, a third of the non-epoch work), so dropping any
    term fails. Per env step a forward of both torsos and heads is
    2 x (55 h + h^2) x 2 + 2 x 13 h FLOPs (55 inputs: 10 one-hot houses of 3 and the rest);
    an epoch runs forward + backward (about 3 forwards) over the batch; the rest of an update
    is the rollout (one forward per step) and the advantages (the value torso and head: half
    a forward)."""
    from bb_jax.agent.ppo import PPO

    config = PPOConfig(hidden_size=512, batch_size=512)
    h, features = config.hidden_size, PPO(config).input_size + 2 * 10
    forward = 2 * 2 * (features * h + h * h) + 2 * 13 * h
    one, two = update_flops(config, 1), update_flops(config, 2)
    epoch, rest = two - one, 2 * one - two
    assert 0.93 < epoch / (3 * forward * config.batch_size) < 1.07
    assert 0.93 < rest / (1.5 * forward * config.batch_size) < 1.07


def test_compile_clock_counts_only_new_compiles():
    import jax
    import jax.numpy as jnp

    clock = CompileClock()
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.123456)
    f(jnp.ones(7)).block_until_ready()
    once = clock.seconds()
    assert once > 0
    f(jnp.ones(7)).block_until_ready()
    assert clock.seconds() == once


def test_a_flop_budget_gives_cheap_members_more_steps():
    trainer = CohortTrainer(PPOConfig(), num_steps=None, eval_interval=2048, flop_budget=5e10)
    cheap = MemberSpec(0, 64, 512, {"num_epochs": 3}, "easy", 0)
    dear = MemberSpec(1, 256, 512, {"num_epochs": 10}, "easy", 0)
    a, b = trainer.plan(cheap), trainer.plan(dear)
    assert a.updates > 5 * b.updates
    for plan in (a, b):
        assert plan.chunk & (plan.chunk - 1) == 0
        assert plan.updates % tail_piece(plan.chunk) == 0
        # about ten reports at the default epochs, at least five at the most epochs
        assert plan.updates // plan.chunk >= min(5, plan.updates)
    # one chunk length per shape: members of other epochs share its compiled program
    same_shape = [trainer.plan(MemberSpec(2 + e, 64, 512, {"num_epochs": e}, "easy", 0))
                  for e in (3, 6, 10)]
    assert len({p.chunk for p in same_shape}) == 1
    assert same_shape[0].updates > same_shape[1].updates > same_shape[2].updates
    assert same_shape[1].updates // same_shape[1].chunk >= 10


@pytest.mark.parametrize("hidden, batch, epochs", [
    (64, 512, 3), (64, 512, 10), (64, 4096, 10), (128, 512, 10), (256, 512, 5)])
def test_a_flop_budget_is_spent_to_within_half_a_tail_piece(hidden, batch, epochs):
    """Equal compute: every run spends its budget to within half a tail piece (1/16 of a
    chunk), in whole chunks then tail pieces; before, the updates past the last whole chunk
    were dropped (0.88-0.97 of 1e11 spent for these shapes)."""
    budget = 1e11
    trainer = CohortTrainer(PPOConfig(), num_steps=None, eval_interval=2048, flop_budget=budget)
    plan = trainer.plan(MemberSpec(0, hidden, batch, {"num_epochs": epochs}, "easy", 0))
    spent = plan.updates * plan.update_flops / budget
    tolerance = tail_piece(plan.chunk) * plan.update_flops / 2 / budget
    assert abs(spent - 1) <= tolerance <= 1 / 32
    stretches = trainer.stretches(plan)
    assert sum(map(sum, stretches)) == plan.updates
    assert all(lengths == [plan.chunk] for lengths in stretches[:-1])
    assert set(stretches[-1]) <= {plan.chunk, tail_piece(plan.chunk)}


def _run(tmp: Path, name: str, *extra: str) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    enqueue = tmp / "enqueue.json"
    enqueue.write_text(json.dumps([CHEAP, {**CHEAP, "learning_rate": 1e-4}]))
    code = tune_main(["--scenario", "easy", "--n-trials", "2", "--seed", "3",
                      "--seeds-per-trial", "1", "--eval-interval", "1024", "--enqueue",
                      str(enqueue), "--no-incumbent", "--study-name", name, "--output-dir",
                      str(tmp), *extra])
    assert code == 0
    return json.loads((tmp / f"{name}_results.json").read_text())


def test_same_seed_gives_the_same_study_under_a_flop_budget(tmp_path):
    runs = [_run(tmp_path / str(i), "budget", "--flop-budget", "4e9", "--no-validate",
                 "--pruner", "none") for i in range(2)]
    for run in runs:
        assert run["flop_budget"] == 4e9 and run["device"]
    first, second = ([(t["params"], t["value"], t["intermediate_values"],
                       t["user_attrs"]["flops"], t["user_attrs"]["env_steps"])
                      for t in run["trials"]] for run in runs)
    assert first == second
    trial = runs[0]["trials"][0]
    # the run spent its budget (to within half a tail piece: a sixteenth of a report's
    # stretch); reports are permille of it
    assert trial["user_attrs"]["flops"] == pytest.approx(4e9, rel=1 / 32)
    steps = sorted(int(s) for s in trial["intermediate_values"])
    assert steps[-1] <= 1000 * (1 + 1 / 32) and len(steps) >= 10  # as the spend above


@pytest.mark.slow
def test_return_and_cost_study_validates_its_front(tmp_path, capsys):
    result = _run(tmp_path, "front", "--objectives", "return,cost", "--num-steps", "4096",
                  "--validate-top-k", "2", "--validate-seeds", "2", "--eval-episodes", "10")
    assert result["objectives"] == ["return", "cost"]
    assert result["pareto_front"]
    for trial in result["trials"]:
        assert trial["values"][1] == pytest.approx(trial["user_attrs"]["tflops_per_run"])
    rec = result["recommendation"]
    assert rec["cheapest"] is not None
    assert "scripts/train_simple.py" in rec["cheapest"]["train_command"]
    out = capsys.readouterr().out
    assert "cheapest within" in out
    assert (tmp_path / "front_pareto.html").exists()
    pages = list(tmp_path.glob("*.html"))
    assert len(pages) == 6
    for page in pages:
        html = page.read_text()
        assert 'src="plotly.min.js"' in html
        assert 'src="http' not in html and "cdn.plot.ly" not in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_cheapest_is_the_least_flops_within_the_margin():
    rows = [{"trial": 0, "mean": 10.0, "per_seed": [10, 11, 9, 10], "n_failed": 0,
             "tflops_per_run": 9.0},
            {"trial": 1, "mean": 9.9, "per_seed": [10, 10.8, 8.8, 10], "n_failed": 0,
             "tflops_per_run": 2.0},
            {"trial": 2, "mean": 5.0, "per_seed": [5, 6, 4, 5], "n_failed": 0,
             "tflops_per_run": 1.0}]
    assert cheapest_not_worse(rows, margin=1.0) == 1
    rows[1]["n_failed"] = 1
    assert cheapest_not_worse(rows, margin=1.0) == 0


@pytest.mark.parametrize("argv, message", [
    (["--flop-budget", "0"], "--flop-budget must be > 0"),
    (["--time-budget", "-3"], "--time-budget must be > 0"),
    (["--flop-budget", "1e12", "--num-steps", "8192"], "give one of them"),
    (["--flop-budget", "1e12", "--time-budget", "5"], "not both"),
    (["--objectives", "return,speed"], "valid objectives are return, cost"),
    (["--objectives", "cost"], "needs return"),
    (["--objectives", "return,cost", "--flop-budget", "1e12"], "equal env steps"),
])
def test_budget_and_objective_usage_errors(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = tune_main([*argv, "--output-dir", str(out), "--storage",
                      f"sqlite:///{tmp_path}/s.db", "--study-name", "x"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() and not (tmp_path / "s.db").exists()


def test_a_resume_with_another_seed_trains_on_the_study_seeds(tmp_path):
    """The study owns its tuning seeds: a resume with another --seed trains on the seeds
    recorded at creation (worker processes: tests/test_pairing.py). The reliability tests'
    one-update program, shared through the compile cache."""
    storage = f"sqlite:///{tmp_path}/paired.db"
    for seed in ("1", "2"):
        enqueue = write_enqueue_file(tmp_path / f"q{seed}.json", [int(seed)])
        assert tune_main(["--seed", seed, "--seeds-per-trial", "2", "--population-size", "2",
                          *SMALL, "--enqueue", str(enqueue), "--storage", storage,
                          "--study-name", "paired", "--n-trials", "1",
                          "--output-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "paired_results.json").read_text())
    assert result["tuning_seeds"] == [1000, 1001]
    assert [t["user_attrs"]["seeds"] for t in result["trials"]] == [[1000, 1001]] * 2
