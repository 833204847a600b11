"""Ensembles of trained policies (`bb_jax.runtime.ensemble`, `validate_best.py --ensemble`,
`evaluate.py --ensemble-with`): the combined distribution, K copies of one network playing
exactly as it does, the validated ensemble paired with the best single configuration on the
same episodes, and bad input in one line with nothing written."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optuna
import pytest

from bb_jax.agent.config import PPOConfig
from bb_jax.agent.ppo import PPO
from bb_jax.cli import evaluate_main, validate_main
from bb_jax.runtime.driver import evaluation_keys
from bb_jax.runtime.ensemble import RULES, combine, ensemble_returns
from bb_jax.tuning.space import SEARCH_SPACE, control_params

CONFIG = PPOConfig(scenario="easy", hidden_size=32, batch_size=512, total_steps=4096)
EPISODES = 6


def _network(seed: int):
    ppo = PPO(CONFIG)
    return ppo.network.init(jax.random.PRNGKey(seed), jnp.zeros((ppo.input_size,)))


def _stacked(*seeds):
    return jax.tree.map(lambda *x: jnp.stack(x), *[_network(s) for s in seeds])


@pytest.mark.parametrize("rule", RULES)
def test_the_combined_heads_are_distributions_of_the_rule(rule):
    """Each head's combination is a proper distribution (non-negative, sums to 1) and is the
    members' mean probability ("probs") or normalised mean log-probability ("logits")."""
    rng = np.random.default_rng(0)
    heads = [(jnp.asarray(rng.normal(0, 3, (5, 10)), jnp.float32),
              jnp.asarray(rng.normal(0, 3, (5, 2)), jnp.float32)) for _ in range(3)]
    for h, logp in enumerate(combine(heads, rule)):
        p = np.exp(np.asarray(logp, np.float64))
        assert np.all(p >= 0) and np.allclose(p.sum(-1), 1.0, atol=1e-6)
        members = np.stack([np.asarray(jax.nn.softmax(head[h])) for head in heads])
        if rule == "probs":
            expected = members.mean(0)
        else:
            geometric = np.exp(np.log(members).mean(0))
            expected = geometric / geometric.sum(-1, keepdims=True)
        assert np.allclose(p, expected, atol=1e-5)
    with pytest.raises(ValueError, match="valid: probs, logits"):
        combine(heads, "vote")


@pytest.mark.parametrize("rule, greedy", [
    ("probs", False), pytest.param("logits", True, marks=pytest.mark.slow)])
def test_k_copies_of_one_network_play_its_episodes(rule, greedy):
    """Three copies of each seed's network return exactly what that network returns alone on
    the same keys; two different networks (in either order) play other episodes' actions."""
    keys = evaluation_keys([5, 6])
    params = _stacked(1, 2)
    ppo = PPO(CONFIG)
    alone = np.asarray(jax.jit(jax.vmap(
        lambda p, k: ppo.evaluate(p, k, EPISODES, greedy)))(params, keys))
    copies = ensemble_returns([CONFIG] * 3, [params] * 3, keys, EPISODES, "easy", rule,
                              greedy)
    np.testing.assert_array_equal(copies, alone)
    other = _stacked(3, 4)
    ab = ensemble_returns([CONFIG] * 2, [params, other], keys, EPISODES, "easy", rule, greedy)
    ba = ensemble_returns([CONFIG] * 2, [other, params], keys, EPISODES, "easy", rule, greedy)
    np.testing.assert_array_equal(ab, ba)  # the combination ignores the members' order


def _study(url: str) -> None:
    """Two complete trials at the default shape (one compiled program with the control)."""
    study = optuna.create_study(study_name="e", storage=url, direction="maximize")
    study.set_user_attr("seed", 3)
    study.set_user_attr("tuning_seeds", [3000, 3001])
    study.set_user_attr("scenarios", ["easy"])
    for value, lr in ((20.0, 3e-4), (10.0, 1e-4)):
        study.add_trial(optuna.trial.create_trial(
            params={**control_params(), "learning_rate": lr}, distributions=SEARCH_SPACE,
            value=value))


@pytest.mark.parametrize("k, message", [
    (3, "--ensemble 3 needs 3 validated configurations; this validation trains 2 (valid: "
        "2..2"),
    (1, "--ensemble must be >= 2"),
])
def test_an_ensemble_larger_than_the_candidates_is_refused(tmp_path, capsys, k, message):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    _study(url)
    out = tmp_path / "out.json"
    assert validate_main(["--study-name", "e", "--storage", url, "--top-k", "5",
                          "--ensemble", str(k), "--results-json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
    assert "validation" not in optuna.load_study(study_name="e", storage=url).user_attrs


def test_the_validated_ensemble_pairs_with_the_best_single_on_its_episodes(tmp_path, capsys):
    """validate_best.py --ensemble 2 on a tiny study: the best single configuration replayed
    by the ensemble's scan returns the per-seed figures validation measured for it (the same
    episodes), the ensemble's difference is paired over the seeds, and the study stores it."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    _study(url)
    out = tmp_path / "out.json"
    assert validate_main(["--study-name", "e", "--storage", url, "--top-k", "2",
                          "--n-seeds", "2", "--num-steps", "4096", "--eval-episodes", "4",
                          "--ensemble", "2", "--results-json", str(out)]) == 0
    assert "ensemble of 2 (probs rule) of trial" in capsys.readouterr().out
    stored = optuna.load_study(study_name="e", storage=url).user_attrs["validation"]
    ensemble = stored["ensemble"]
    rows = {r["trial"]: r for r in stored["rows"]}
    assert sorted(ensemble["members"]) == [0, 1]
    assert ensemble["best"] == max((0, 1), key=lambda t: rows[t]["mean"])
    assert ensemble["best_per_seed"] == pytest.approx(rows[ensemble["best"]]["per_seed"],
                                                      rel=1e-5)
    diffs = np.subtract(ensemble["per_seed"], ensemble["best_per_seed"])
    assert ensemble["vs_best"]["n"] == 2
    assert ensemble["vs_best"]["mean"] == pytest.approx(diffs.mean())
    assert ensemble["cost"]["forward_passes_per_action"] == 2
    assert ensemble["cost"]["train_tflops_per_seed"] == pytest.approx(
        rows[0]["tflops_per_run"] + rows[1]["tflops_per_run"])
    assert json.loads(out.read_text())["ensemble"]["vs_best"] == ensemble["vs_best"]


@pytest.mark.slow  # evaluate.py's ensemble path; the pairing test above covers the scoring
def test_evaluate_plays_an_ensemble_of_saved_runs(untrained_runs, tmp_path, capsys):
    """A run ensembled with itself plays its own episodes (difference 0 on every seed); with
    another run, the shared seeds are combined."""
    first, second = untrained_runs
    out = tmp_path / "e.json"
    assert evaluate_main([str(first), "--episodes", "8", "--ensemble-with", str(first),
                          "--results-json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["ensemble"]["per_seed"] == pytest.approx(
        list(report["policy"]["per_seed"].values()))
    assert report["ensemble"]["vs_best_run"]["mean"] == 0.0
    assert evaluate_main([str(first), "--episodes", "8", "--ensemble-with", str(second)]) == 0
    assert "ensemble of 2 runs (probs rule)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def untrained_runs(tmp_path_factory):
    """Two saved runs of initialised, untrained networks on seeds 1 and 2 (different
    initialisations), in the files train_simple.py writes."""
    from flax import serialization

    from bb_jax.agent.config import DEFAULT_HYPERPARAMS
    from bb_jax.runtime.saved_runs import config_json

    folders = []
    for offset in (0, 10):
        folder = tmp_path_factory.mktemp(f"run{offset}")
        (folder / "config.json").write_text(json.dumps(
            {"seeds": [1, 2], "scenarios": ["easy"], **config_json(CONFIG, DEFAULT_HYPERPARAMS)}))
        for seed in (1, 2):
            (folder / f"params_seed{seed}.msgpack").write_bytes(
                serialization.to_bytes(_network(seed + offset)))
        folders.append(folder)
    return folders


def test_parameters_are_kept_only_inside_the_context_and_found_by_spec():
    """Outside `keep_final_params` nothing is kept; inside, a member is found by every field
    of its spec but the member id (validation's ids are its own layout)."""
    from bb_jax.runtime import kept_params
    from bb_jax.tuning.space import member_spec

    spec = member_spec(7, control_params(), "easy", 3)
    assert not kept_params.wanted()
    kept_params.keep(spec, CONFIG, "outside")
    with kept_params.keep_final_params() as kept:
        assert kept_params.wanted() and kept == {}
        kept_params.keep(spec, CONFIG, "inside")
        assert kept_params.find(kept, member_spec(0, control_params(), "easy", 3)).params == \
            "inside"
        assert kept_params.find(kept, member_spec(0, control_params(), "easy", 4)) is None
    assert not kept_params.wanted()
