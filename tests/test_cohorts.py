"""Compile-aware population sizing, cohort grouping, the learner each cohort trains and the
final evaluation's pairing by seed."""

import numpy as np

from bb_jax.runtime.cohorts import group_cohorts
from bb_jax.runtime.members import MemberSpec
from bb_jax.runtime.sizing import CompileAwareSizing, next_power_of_two

SHAPE = (128, 2048)


def spec(member_id, hidden=128, batch=2048):
    return MemberSpec(member_id, hidden, batch, {}, "default", member_id)


def test_groups_by_static_shape_in_order_of_appearance():
    specs = [spec(0, 64), spec(1, 128), spec(2, 64, 512), spec(3, 64)]
    cohorts = group_cohorts(specs)
    assert list(cohorts) == [(64, 2048), (128, 2048), (64, 512)]
    assert [s.member_id for s in cohorts[(64, 2048)]] == [0, 3]


def test_next_power_of_two():
    assert [next_power_of_two(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]


def test_without_measurements_it_compiles_exactly_the_members():
    sizing = CompileAwareSizing()  # one device in-process: no padding to the device count
    assert sizing.choose(SHAPE, 3, 50_000, limit=1024) == 3
    assert sizing.choose(SHAPE, 6, 50_000, limit=1024) == 6  # not 8: padding costs compute
    assert sizing.choose(SHAPE, 3, 50_000, limit=2) == 2  # memory bound: rounds of 2
    # survivors repacked mid-training: the next power of two (few sizes to compile)
    assert sizing.choose(SHAPE, 3, 50_000, limit=1024, rounds=False) == 4


def test_reuses_a_compiled_size_when_compiling_costs_more():
    sizing = CompileAwareSizing(compile_s=15.0)
    sizing.observe(SHAPE, 4, seconds=20.0, member_steps=4 * 10_000, new=True,
                   compile_seconds=19.0)  # 1 s of training: 25 us/step
    assert sizing.compile_s == 17.0
    sizing.observe(SHAPE, 4, seconds=1.0, member_steps=4 * 10_000, new=False)  # 25 us/step
    assert sizing.known(SHAPE) == {4}
    # 3 members: pad to the compiled 4 (free) rather than compile 4 again - same size anyway
    assert sizing.choose(SHAPE, 3, 50_000, limit=1024) == 4
    # 5 members: two rounds of 4 cost 8 x 50k x 25us = 10 s < compile (about 15 s) + 10 s
    assert sizing.choose(SHAPE, 5, 50_000, limit=1024) == 4
    # 1 member: padding to 4 wastes 3 x 50k x 25us = 3.75 s < compile: reuse
    assert sizing.choose(SHAPE, 1, 50_000, limit=1024) == 4


def test_compiles_when_padding_would_waste_more_than_a_compile():
    sizing = CompileAwareSizing(compile_s=5.0)
    sizing.observe(SHAPE, 64, seconds=69.0, member_steps=64 * 1000, new=True,
                   compile_seconds=5.0)
    sizing.observe(SHAPE, 64, seconds=64.0, member_steps=64 * 1000, new=False)  # 1 ms/step
    # one member padded to 64 would train 63 useless copies for 50k steps
    assert sizing.choose(SHAPE, 1, 50_000, limit=1024) == 1
    # survivors mid-training cannot be split into rounds
    assert sizing.choose(SHAPE, 40, 50_000, limit=64, rounds=False) == 64


def test_observed_compile_time_updates_the_estimate():
    sizing = CompileAwareSizing(compile_s=15.0)
    sizing.observe(SHAPE, 1, seconds=1.0, member_steps=1000, new=False)  # 1 ms/step
    sizing.observe(SHAPE, 2, seconds=2.0 + 5.0, member_steps=2000, new=True,
                   compile_seconds=5.0)  # JAX's compile events measured 5 s
    assert sizing.compile_s == 10.0
    assert sizing.step_cost[SHAPE] == 1e-3  # the compile is not counted as training
    assert sizing.known(SHAPE) == {2}


def test_chunks_divide_the_run_or_end_with_one_shorter_chunk():
    from bb_jax.runtime.driver import plan_chunks

    assert plan_chunks(48, 5) == [4] * 12  # a divisor near the target: one compiled length
    assert plan_chunks(12, 1) == [1] * 12
    # 97 updates (batch 512, 50k steps) is a prime: chunks of the target and a remainder
    # rather than 97 one-update calls
    assert plan_chunks(97, 10) == [10] * 9 + [7]
    assert plan_chunks(100, 7) == [5] * 20
    assert sum(plan_chunks(97, 10)) == 97


def test_a_step_budget_plan_reports_about_every_interval_to_the_last_update():
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
    from bb_jax.runtime.cohorts import CohortTrainer

    trainer = CohortTrainer(PPOConfig(), num_steps=50_000, eval_interval=5_000)
    plan = trainer.plan(MemberSpec(0, 128, 512, dict(DEFAULT_HYPERPARAMS), "default", 0))
    assert (plan.updates, plan.chunk, plan.every) == (97, 10, 1)


def test_on_an_accelerator_tuning_validation_and_the_printed_command_train_one_learner(
        monkeypatch, tmp_path):
    """Backend faked as "gpu" (configs only: nothing compiles): for every shape of the full
    search space, the tuner's exact cohort, its member's corner of a padded program (the
    default there), the validation's cohort and the config train_simple.py builds from the
    printed command have the same environments and rollout length (the learner: envs x
    steps per update)."""
    import shlex

    import jax
    import optuna

    from bb_jax.agent.ppo import PPO
    from bb_jax.cli.train import _checked_run, _train_parser
    from bb_jax.tuning import validation
    from bb_jax.tuning.outputs import train_command
    from bb_jax.tuning.settings import TuneSettings, shape_choices
    from bb_jax.tuning.space import SEARCH_SPACE, control_params
    from bb_jax.tuning.tuner import Tuner

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    tuner = Tuner(TuneSettings(output_dir=tmp_path, shapes="exact", space="full",
                               n_trials=1), log=lambda line: None)
    trainers = []

    def capture(candidates, make_spec, trainer, *args, **kwargs):
        trainers.append(trainer)
        return {}

    monkeypatch.setattr(validation, "validate", capture)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("tuning_seeds", [0, 1])
    study.add_trial(optuna.trial.create_trial(
        params={**control_params(), "learning_rate": 1e-3}, distributions=dict(SEARCH_SPACE),
        value=1.0))
    validation.validate_study(study, top_k=1, n_seeds=2, num_steps=50_000, log=lambda s: None)
    choices = shape_choices(TuneSettings(space="full").search_space())  # --shapes padded
    padded = PPO(choices.config(tuner.trainer.base_config), shapes=choices)
    learners = set()
    for hidden in SEARCH_SPACE["hidden_size"].choices:
        for batch in SEARCH_SPACE["batch_size"].choices:
            params = {**control_params(), "hidden_size": hidden, "batch_size": batch}
            argv = shlex.split(train_command(study, params, [7], 50_000, "run"))[2:]
            printed = _checked_run(_train_parser().parse_args(argv))[1]
            configs = (tuner.trainer.config_for(hidden, batch),
                       trainers[0].config_for(hidden, batch), printed)
            assert {(c.num_envs, c.rollout_length) for c in configs} == {
                (printed.num_envs, printed.rollout_length)}, (hidden, batch)
            corner = np.asarray(padded.layout.valid_steps(choices.member(hidden, batch)))
            assert (corner.any(0).sum(), corner.any(1).sum(), corner.sum()) == (
                printed.num_envs, printed.rollout_length, batch), (hidden, batch)
            learners.add((batch, printed.num_envs))
    # on an accelerator the environments follow the batch (16-step rollouts)
    assert {envs for _, envs in learners} == {32, 64, 128, 256}


def test_final_evaluation_follows_the_seed_not_the_member_id():
    """Validation pairs runs by seed: a seed's fresh-episode evaluation must not depend on
    the member id it trains under (two runs, the same seeds under disjoint ids). Two-update
    runs of hidden 16, batch 256."""
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
    from bb_jax.runtime.cohorts import CohortTrainer

    def run(ids):
        trainer = CohortTrainer(PPOConfig(scenario="easy"), num_steps=512, eval_interval=512,
                                eval_episodes=4)
        specs = [MemberSpec(i, 16, 256, dict(DEFAULT_HYPERPARAMS), "easy", seed)
                 for i, seed in zip(ids, (5, 6))]
        results = trainer.run(specs)
        return [results[i].value for i in ids]

    first, second = run([0, 1]), run([10, 11])
    assert first == second
    assert first[0] != first[1]  # the evaluation does depend on the seed
