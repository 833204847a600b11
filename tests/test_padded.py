"""Shape-padded populations (`--shapes padded`): members of different hidden sizes and batch
sizes train in one compiled program, each exactly as its own exact-shape run.

A padded member's network is its own embedded in the program's largest one (extra hidden
units have zero weights in and out, so their activations, gradients and Adam moments stay
zero), and its batch is its own rollout (its exact program's environments and length) in
the corner of the program's: its first environments for its first steps (later steps leave
the environments as they are; entries outside the corner are masked out of every mean). Its
keys are those of the exact run (`jax.random.split(key, T)[t]` does not depend on T, nor a
draw's first rows on its row count; the minibatch permutation is drawn for the member's own
batch size). So the rollouts, returns and episode
counts are bit-identical, and parameters after an update differ only by float rounding
(reductions over zero-padded rows sum in another order): compared update by update from the
member's own state with test_population.py's tolerance, 1% of one Adam step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax.agent.config import PPOConfig, ShapeChoices, stack_hyperparams
from bb_jax.game.scenarios import get_scenario, stack_scenarios
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberSpec
from bb_jax.runtime.population import Population

CHOICES = ShapeChoices(hidden_sizes=(16, 32), batch_sizes=(256, 512))
BASE = PPOConfig(scenario="easy", total_steps=None)
# (hidden, batch, seed, hyperparameters): every shape the program serves, mixed scenarios
MEMBERS = (
    (16, 256, 3, {"num_epochs": 2}, "easy"),
    (32, 512, 5, {"num_epochs": 3, "learning_rate": 3e-4}, "hard"),
    (32, 256, 7, {"num_epochs": 1}, "easy"),
    (16, 512, 3, {"num_epochs": 2}, "default"),
)
PARAM_ATOL = 1e-5  # 1% of one Adam step at the default learning rate 1e-3
MOMENT_RTOL = 1e-2  # of each optimizer-state leaf's largest magnitude


# Every program here is a population of 1 (exact) or 4 (padded) members running one-update
# chunks: the cohort trainer's test reports every update, so it reuses them all.
EVAL_INTERVAL = 256


def _exact_population(i: int) -> Population:
    """Member i alone, in its exact shape's program."""
    hidden, batch, seed, hp, scenario = MEMBERS[i]
    return Population(BASE.replace(hidden_size=hidden, batch_size=batch, num_envs=None),
                      stack_hyperparams([hp]), jnp.stack([jax.random.PRNGKey(seed)]),
                      stack_scenarios([get_scenario(scenario, BASE.num_opponents + 1)]))


def _population() -> Population:
    rows = [CHOICES.member(h, b) for h, b, *_ in MEMBERS]
    return Population(
        CHOICES.config(BASE), stack_hyperparams([m[3] for m in MEMBERS]),
        jnp.stack([jax.random.PRNGKey(m[2]) for m in MEMBERS]),
        stack_scenarios([get_scenario(m[4], BASE.num_opponents + 1) for m in MEMBERS]),
        shapes=CHOICES, member_shapes=jax.tree.map(lambda *x: jnp.stack(x), *rows))


def _row(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _crop(tree, like):
    """The exact-shape corner of a padded tree (`like`: the exact tree or its shapes)."""
    return jax.tree.map(lambda x, t: np.asarray(x)[tuple(slice(0, n) for n in t.shape)],
                        tree, like)


def _outside(tree, like):
    """Largest magnitude of a padded tree outside its exact-shape corner."""
    def rest(x, t):
        x = np.abs(np.array(x))
        if x.ndim == 0:
            return 0.0  # the step count
        x[tuple(slice(0, n) for n in t.shape)] = 0
        return float(x.max(initial=0.0))
    return max(jax.tree.leaves(jax.tree.map(rest, tree, like)))


def _exact_state(padded_state, i, like):
    """Member i of a padded population's state, cropped to the exact state `like`'s shapes."""
    row = _row(padded_state, i)
    return row.replace(**{name: _crop(getattr(row, name), getattr(like, name))
                          for name in ("params", "opt_state", "env_state", "obs")})


def _check_against_exact(members, updates: int) -> None:
    """Members `members` of the padded population, `updates` one-update calls, against their
    own exact programs: the initial state bit for bit inside zeros, then update by update
    from the member's own state."""
    population = _population()
    exact = {i: _exact_population(i) for i in members}
    # initial state: the exact run's, bit for bit, inside zeros
    for i, own in exact.items():
        own_params = _row(own.state.params, 0)
        row = _row(population.state, i)
        same = jax.tree.map(np.array_equal, _crop(row.params, own_params), own_params)
        assert all(jax.tree.leaves(same)), f"member {i}: initial parameters differ"
        assert _outside(row.params, own_params) == 0.0
    likes = {i: _row(own.state, 0) for i, own in exact.items()}
    for update in range(updates):
        before = jax.tree.map(np.asarray, population.state)
        metrics = population.run(1, until=[update + 1] * len(MEMBERS))
        for i, own in exact.items():
            like = likes[i]
            # the exact program, one update from the member's own state
            own.state = jax.tree.map(lambda x: jnp.asarray(x)[None],
                                     _exact_state(before, i, like))
            want_metrics = jax.tree.map(lambda x: np.asarray(x)[0], own.run(1))
            want = _row(own.state, 0)
            got = _row(population.state, i)
            for name in ("env_state", "obs", "key", "update", "recent_returns", "num_episodes"):
                own_part = _crop(getattr(got, name), getattr(want, name))
                assert jax.tree.all(jax.tree.map(np.array_equal, own_part,
                                                 getattr(want, name))), (i, update, name)
            for name in ("episodes_finished", "return_sum", "env_steps"):
                assert np.asarray(metrics[name])[i, 0] == want_metrics[name][0]
            for got_p, want_p in zip(jax.tree.leaves(_crop(got.params, like.params)),
                                     jax.tree.leaves(want.params)):
                np.testing.assert_allclose(got_p, want_p, atol=PARAM_ATOL, rtol=0,
                                           err_msg=f"member {i} update {update}")
            for got_m, want_m in zip(jax.tree.leaves(_crop(got.opt_state, like.opt_state)),
                                     jax.tree.leaves(want.opt_state)):
                scale = float(np.abs(want_m).max(initial=0.0)) or 1.0
                np.testing.assert_allclose(got_m, want_m, atol=MOMENT_RTOL * scale, rtol=0)
            # the padded units: weights, gradients (hence Adam moments) stay exactly zero
            assert _outside(got.params, like.params) == 0.0, (i, update)
            assert _outside(got.opt_state, like.opt_state) == 0.0, (i, update)


@pytest.mark.slow
def test_padded_members_train_exactly_as_their_own_shapes():
    _check_against_exact(range(len(MEMBERS)), updates=2)


def test_a_member_padded_in_both_shapes_trains_as_its_own_for_one_update():
    """CI sibling of the test above: member 0 (hidden 16 of 32, batch 256 of 512), one
    update; the padded program is test_until_stops_each_member_at_its_own_update_count's."""
    _check_against_exact([0], updates=1)


@pytest.mark.slow  # quick siblings: test_cohorts (GPU-faked configs), one-update padded test
def test_on_an_accelerator_a_padded_member_trains_its_own_environments(monkeypatch):
    """Backend faked as "gpu" (the programs still run on the CPU): each member keeps the
    environments and 16-step rollout its exact program has (batch / 16 environments) inside
    the program's 32 x 16, as train_simple.py trains it. Before, every member ran over the
    smallest batch's 16 environments, so batch 512 trained as 16 x 32."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    config = CHOICES.config(BASE)
    assert (config.num_envs, config.rollout_length) == (32, 16)
    _check_against_exact([0, 3], updates=1)  # 16 envs x 16 steps (masked), 32 x 16


def test_until_stops_each_member_at_its_own_update_count():
    population = _population()
    until = [3, 1, 2, 3]
    calls = [population.run(1, until=until) for _ in range(3)]
    metrics = {k: np.concatenate([np.asarray(c[k]) for c in calls], axis=1)
               for k in ("episodes_finished", "env_steps")}
    assert np.asarray(population.state.update)[:4].tolist() == until
    finished = np.asarray(metrics["episodes_finished"])
    batches = [b for _, b, *_ in MEMBERS]
    for i, stop in enumerate(until):
        assert np.all(finished[i, stop:] == 0), i
        assert np.asarray(metrics["env_steps"])[i].tolist() == [
            min(k + 1, stop) * batches[i] for k in range(3)]


@pytest.mark.slow
def test_cohort_trainer_padded_reports_like_exact_in_one_program():
    """The tuner's path: members of mixed shapes in one padded program report at the same env
    steps with the same values as the exact cohorts (one program per shape), and a second
    padded run repeats the first exactly."""
    specs = [MemberSpec(i, h, b, hp, scenario, seed)
             for i, (h, b, seed, hp, scenario) in enumerate(MEMBERS)]

    def run(choices):
        trainer = CohortTrainer(BASE, num_steps=2048, eval_interval=EVAL_INTERVAL,
                                shape_choices=choices)
        reports = []
        results = trainer.run(specs, lambda r: reports.extend(r) or set())
        return trainer, sorted((r.member_id, r.env_steps, r.value) for r in reports), results

    exact_trainer, exact_reports, exact_results = run(None)
    padded_trainer, padded_reports, padded_results = run(CHOICES)
    assert run(CHOICES)[1] == padded_reports  # same seeds -> the same values, bit for bit
    assert len(exact_trainer.programs) == 4
    assert list(padded_trainer.programs) == [
        ("padded (hidden<=32 batch<=512)", 4)]
    assert padded_trainer.programs[("padded (hidden<=32 batch<=512)", 4)] == 4
    assert [r[:2] for r in padded_reports] == [r[:2] for r in exact_reports]
    # values: mean returns of the same episodes while the rollouts agree (a float flip in an
    # action sample can part them late in a run, so within noise, not bit for bit)
    np.testing.assert_allclose([r[2] for r in padded_reports], [r[2] for r in exact_reports],
                               atol=5.0)
    assert {k: v.state for k, v in padded_results.items()} == {
        k: v.state for k, v in exact_results.items()}


def test_a_shape_outside_the_choices_is_refused():
    with pytest.raises(ValueError, match="not among"):
        CHOICES.member(64, 256)


def test_population_memory_of_a_padded_program_comes_from_its_own_compile():
    """The padded program's XLA memory figure per member: at least the exact program's of the
    largest shape (it holds the same arrays, plus masks and one permutation per batch size),
    and of the same order."""
    from bb_jax.runtime.memory import member_bytes

    largest = CHOICES.config(BASE)
    padded, exact_largest = member_bytes(largest, 0, CHOICES), member_bytes(largest)
    assert exact_largest <= padded <= 2 * exact_largest


@pytest.mark.slow
def test_the_tuner_with_padded_shapes_gives_the_exact_study(tmp_path):
    """`--shapes padded` through the tuner: with the hidden size held (--fix), two trials of
    batch 512 and 4096 train in one padded program and their values are those of the exact
    study (two programs), within float rounding."""
    import json

    from bb_jax.cli import tune_main

    enqueue = tmp_path / "q.json"
    enqueue.write_text(json.dumps([{"batch_size": 512}, {"batch_size": 4096}]))
    results = {}
    for shapes in ("exact", "padded"):
        out = tmp_path / shapes
        assert tune_main(["--shapes", shapes, "--fix", "hidden_size=64", "--enqueue",
                          str(enqueue), "--n-trials", "2", "--population-size", "2",
                          "--seeds-per-trial", "1", "--num-steps", "4096", "--eval-interval",
                          "4096", "--pruner", "none", "--no-validate", "--seed", "4",
                          "--no-incumbent",
                          "--study-name", shapes, "--output-dir", str(out)]) == 0
        results[shapes] = json.loads((out / f"{shapes}_results.json").read_text())
    exact, padded = results["exact"]["trials"], results["padded"]["trials"]
    assert [t["params"] for t in exact] == [t["params"] for t in padded]
    assert [t["value"] for t in padded] == pytest.approx([t["value"] for t in exact], rel=1e-4)
