"""docs/RESULTS.md rendering and verdicts (bb_jax.results) and learning speed
(bb_jax.results.learning_speed) on synthetic figures, and one tiny real run of `results_main`
(bb_jax.cli.results, scripts/results_report.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bb_jax.agent.config import PPOConfig
from bb_jax.cli.results import results_main as main
from bb_jax.results.learning_speed import (
    chunk_totals,
    first_crossing,
    learning_speed,
    smoothed_curve,
    speed_figures,
    window_chunks,
)
from bb_jax.results.markdown import markdown
from bb_jax.results.outputs import write_outputs
from bb_jax.results.verdicts import compare, verdicts
from bb_jax.runtime import baselines


def fig(mean, ci):
    return {"mean": mean, "ci95": ci}


def synthetic_results():
    def ppo(sampled, greedy, chunk_means):
        seeds = [greedy["mean"] - 1, greedy["mean"], greedy["mean"] + 1]
        return {"ppo_sampled": {**sampled, "per_seed": seeds},
                "ppo_greedy": {**greedy, "per_seed": seeds},
                "ppo_train_last100": {**sampled, "per_seed": seeds},
                "train_curve_mean": [1.0, 2.0], "train_curve_min": [0.0, 1.0],
                "train_curve_max": [2.0, 3.0],
                "seed_chunk_episodes": [[10, 10]] * len(chunk_means),
                "seed_chunk_mean_return": chunk_means}

    def base(random, best_name, best):
        pol = {k: fig(random["mean"] - 1, 1.0) for k in baselines.BASELINES}
        pol["random"], pol[best_name] = random, best
        return {"policies": pol, "best_heuristic": best_name}

    results = {
        "settings": {"seeds": [0, 1, 2], "num_opponents": 2, "eval_episodes": 100,
                     "baseline_episodes": 400, "hidden_size": 128, "batch_size": 2048,
                     "hyperparameters": {"learning_rate": 1e-3}},
        "machine": {"cpu": "cpu", "cpu_count": 2, "platform": "linux", "jax_version": "0",
                    "jax_backend": "cpu", "load_average_1_5_15min": [1, 1, 1],
                    "load_average_at_end": [1, 1, 1]},
        # PPO clearly above both / above random but below the heuristic / a tie with both;
        # per-seed training returns of two chunks (learning speed with a one-chunk window:
        # easy beats random at [2048, 4096, 2048] and the heuristic at [4096, 4096, 2048];
        # hard beats random at 2048 in every seed, never the heuristic; default beats random
        # in one seed (4096), never the heuristic; trivial_cooperation both at 2048)
        "ppo": {"easy": ppo(fig(1100, 10), fig(1110, 10),
                            [[990, 1010], [970, 1020], [1010, 1020]]),
                "hard": ppo(fig(520, 10), fig(515, 10), [[480, 500]] * 3),
                "default": ppo(fig(960, 30), fig(955, 30), [[950, 960], [950, 950], [950, 950]]),
                "trivial_cooperation": ppo(fig(1303.5, 6.9), fig(1303.9, 7.2),
                                           [[1304, 1304]] * 3)},
        "baselines": {"easy": base(fig(980, 3), "coordinator", fig(1000, 3)),
                      "hard": base(fig(470, 4), "firefighter", fig(560, 4)),
                      "default": base(fig(958, 3), "coordinator", fig(975, 3)),
                      "trivial_cooperation": base(fig(1300, 0.1), "liar", fig(1303.6, 0.1))},
        "curve_env_steps": [2048, 4096], "chunk_env_steps": [2048, 4096], "members": 12,
        "env_steps_per_member": 4096,
        "train_wall_s": 10.0, "eval_wall_s": 1.0, "baseline_wall_s": 1.0, "wall_s": 12.0,
    }
    results["verdicts"] = verdicts(results)
    results["learning_speed"] = learning_speed(results, window_steps=2048)
    return results


STEPS = [10, 20, 30, 40, 50]


def test_first_crossing():
    nan = math.nan
    assert first_crossing(STEPS, [1, 2, 6, 7, 8], 5) == 30  # crosses between 20 and 30
    assert first_crossing(STEPS, [6, 7, 8, 9, 9], 5) == 10  # above from the first chunk end
    assert first_crossing(STEPS, [1, 2, 3, 4, 4.9], 5) is None  # never crosses
    assert first_crossing(STEPS, [1, 5, 5, 6, 6], 5) == 40  # equal is not above
    assert first_crossing(STEPS, [6, 2, 7, 8, 9], 5) == 30  # crosses, dips: the last crossing
    assert first_crossing(STEPS, [1, 6, 7, 4, 4], 5) is None  # crosses then dips to the end
    assert first_crossing(STEPS, [nan, 6, 6, 6, 6], 5) == 20  # no episodes yet: not above
    assert first_crossing([], [], 5) is None


def test_smoothed_curve_is_the_mean_over_the_episodes_of_the_trailing_window():
    episodes, means = [2, 0, 1, 3], [10.0, None, 40.0, 0.0]
    # window 2: chunks {0}, {0, 1}, {1, 2}, {2, 3}: 20/2, 20/2, 40/1, (40 + 0)/4
    np.testing.assert_allclose(smoothed_curve(episodes, means, 2), [10, 10, 40, 10])
    np.testing.assert_allclose(smoothed_curve(episodes, means, 1), [10, np.nan, 40, 0])
    # window 3, weighted by episodes: (20 + 40)/3 at chunk 2, (40 + 0)/4 at chunk 3
    np.testing.assert_allclose(smoothed_curve(episodes, means, 3), [10, 10, 20, 10])
    assert np.isnan(smoothed_curve([0, 0, 4], [None, None, 3.0], 2)[:2]).all()


def test_window_chunks_covers_at_least_the_window():
    assert window_chunks(8192, 20_000) == 3  # the 500k report: 4 updates of 2048 per chunk
    assert window_chunks(2048, 20_000) == 10
    assert window_chunks(20_000, 20_000) == 1
    assert window_chunks(32_768, 20_000) == 1


def test_speed_figures_average_only_the_seeds_that_got_there():
    curves = [[1, 6, 6, 6, 6], [1, 1, 1, 6, 6], [1, 6, 1, 1, 1]]
    f = speed_figures(STEPS, curves, 5)
    assert f["per_seed"] == [20, 40, None] and (f["reached"], f["seeds"]) == (2, 3)
    assert f["mean"] == 30  # not (20 + 40 + 50) / 3: the third seed is not a number
    assert f["ci95"] == pytest.approx(12.7062 * 10, rel=1e-4)  # t(0.975, 1) x sem([20, 40])
    one = speed_figures(STEPS, curves[1:], 5)
    assert (one["mean"], one["ci95"], one["reached"]) == (40, None, 1)
    none = speed_figures(STEPS, curves[2:], 5)
    assert (none["mean"], none["ci95"], none["reached"]) == (None, None, 0)


def test_chunk_totals_sum_each_chunk():
    curves = {"episodes_finished": np.array([[1, 2, 0, 3], [0, 0, 5, 5]], np.float32),
              "return_sum": np.array([[10, 20, 0, 30], [0, 0, 50, 45]], np.float32),
              "env_steps": np.array([[100, 200, 300, 400]] * 2)}
    steps, episodes, sums = chunk_totals(curves, 2)
    assert steps == [200, 400]
    np.testing.assert_array_equal(episodes, [[3, 3], [0, 10]])
    np.testing.assert_array_equal(sums, [[30, 30], [0, 95]])


def test_compare():
    assert compare(fig(10, 1), fig(5, 1)) == "better"
    assert compare(fig(5, 1), fig(10, 1)) == "worse"
    assert compare(fig(10, 4), fig(5, 3)) == "tie"  # |5| <= hypot(4, 3) = 5
    assert compare(fig(10, float("nan")), fig(5, 1)) == "better"  # one seed: no interval


def test_verdicts():
    v = synthetic_results()["verdicts"]
    assert v["easy"] == {"sampled_vs_random": "better", "sampled_vs_heuristic": "better",
                         "greedy_vs_random": "better", "greedy_vs_heuristic": "better"}
    assert v["hard"]["sampled_vs_random"] == "better"
    assert v["hard"]["greedy_vs_heuristic"] == "worse"
    assert v["default"]["sampled_vs_random"] == "tie"


def test_markdown_says_where_ppo_does_not_beat_the_heuristic():
    text = markdown(synthetic_results())
    assert "better than the uniform-random policy on **2 of 4** scenarios" in text
    assert "**1 of 4**" in text
    assert ("**Does not beat the best heuristic: hard, default, trivial_cooperation**"
            in text)
    assert "significantly worse than it (sampled and greedy): hard." in text
    assert "| hard | 470.0 ± 4.0 | 560.0 ± 4.0 (firefighter) |" in text
    section = text.split("## Where PPO does not beat the best heuristic")[1]
    assert "- **hard**: PPO greedy per seed [514.0, 515.0, 516.0]" in section
    # p_fire = 0: 13 nights x (A = 100 + 0.5 for resting); one synthetic seed at 1304.9
    assert "ceiling 1306.5" in section and "0 of 3 PPO seeds reach it" in section
    for name in baselines.BASELINES:
        assert name in text


def test_markdown_learning_speed_table():
    results = synthetic_results()
    text = markdown(results)
    section = text.split("## Learning speed: env steps until PPO beats each baseline")[1]
    section = section.split("## How it was produced")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 4  # header and one row per scenario
    # easy: random at [2048, 4096, 2048] (t(0.975, 2) x sem = 4.3027 x 682.7 = 2937)
    assert rows[1].startswith("| easy | 2,731 ± 2,937 | 3/3 seeds | 3,413 ± 2,937 | 3/3 seeds |")
    assert rows[2] == "| hard | 2,048 ± 0 | 3/3 seeds | not reached | 0/3 seeds |"
    assert rows[3] == "| default | 4,096 | 1/3 seeds | not reached | 0/3 seeds |"
    assert "trailing 1 chunk, 2,048 env steps" in section
    assert ("Not reached by every seed within the run: hard vs the best heuristic (0/3 seeds "
            "reached it); default vs random (1/3 seeds reached it); default vs the best "
            "heuristic (0/3 seeds reached it).") in section
    speed = results["learning_speed"]["scenarios"]
    assert speed["easy"]["heuristic"]["per_seed"] == [4096, 4096, 2048]
    assert speed["easy"]["heuristic"]["policy"] == "coordinator"
    del results["learning_speed"]  # a results JSON saved before the learning speed
    assert "Learning speed" not in markdown(results)


def test_markdown_names_the_learner_choices():
    results = synthetic_results()
    results["settings"]["learner"] = {"time_input": True, "critic": "separate",
                                      "adv_norm": "batch"}
    line = next(x for x in markdown(results).splitlines() if x.startswith("- Training:"))
    assert line.endswith("Learner: time input on, separate critic, advantages normalised per "
                         "batch (docs/PPO.md).")
    results["settings"]["learner"] = {"time_input": False, "critic": "shared",
                                      "adv_norm": "minibatch"}
    assert "time input off, shared critic, advantages normalised per minibatch" in markdown(
        results)
    del results["settings"]["learner"]  # a results JSON saved before the choices were recorded
    assert "Learner:" not in markdown(results)


def test_write_outputs(tmp_path):
    results = synthetic_results()
    md, png, js = tmp_path / "d" / "R.md", tmp_path / "d" / "p.png", tmp_path / "r.json"
    write_outputs(results, md, png, js)
    assert "![results](p.png)" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(js.read_text())["verdicts"] == results["verdicts"]


@pytest.mark.slow
def test_main_tiny_run_writes_the_report(tmp_path):
    """Two seeds x two scenarios, one update each: every output written, the figures of each
    scenario its own (PPO and the baselines score `hard` far below `easy`)."""
    md, png, js = tmp_path / "RESULTS.md", tmp_path / "results.png", tmp_path / "results.json"
    code = main(["--num-steps", "4096", "--seeds", "0", "1", "--scenario", "easy,hard",
                 "--hidden-size", "32", "--eval-episodes", "20", "--baseline-episodes", "64",
                 "--out", str(md), "--plot", str(png), "--json", str(js)])
    assert code == 0
    results = json.loads(js.read_text())
    assert set(results["ppo"]) == set(results["baselines"]) == {"easy", "hard"}
    assert results["members"] == 4 and results["env_steps_per_member"] == 4096
    ppo, base = results["ppo"], results["baselines"]
    for name in ("easy", "hard"):
        for key in ("ppo_sampled", "ppo_greedy", "ppo_train_last100"):
            assert len(ppo[name][key]["per_seed"]) == 2
        assert set(base[name]["policies"]) == set(baselines.BASELINES)
    for key in ("ppo_sampled", "ppo_train_last100"):
        assert ppo["easy"][key]["mean"] > ppo["hard"][key]["mean"] + 100
    assert base["easy"]["policies"]["random"]["mean"] > base["hard"]["policies"]["random"]["mean"]
    assert results["verdicts"] == verdicts(results)
    assert results["settings"]["learner"] == {
        "time_input": PPOConfig.time_input, "critic": PPOConfig.critic,
        "adv_norm": PPOConfig.adv_norm}  # the defaults the run trained with
    text = md.read_text()
    assert "| easy |" in text and "| hard |" in text and "![results](results.png)" in text
    # one chunk of two updates: per seed, its episodes and their mean return
    assert results["chunk_env_steps"] == [4096]
    speed = results["learning_speed"]
    assert (speed["window_chunks"], speed["window_env_steps"]) == (5, 20_480)  # >= 20,000
    assert set(speed["scenarios"]) == {"easy", "hard"}
    # each seed's curve is its own scenario's (hard scores far below easy)
    first = {n: [m[0] for m in ppo[n]["seed_chunk_mean_return"]] for n in ("easy", "hard")}
    assert min(first["easy"]) > max(first["hard"]) + 100
    for name in ("easy", "hard"):
        episodes, means = ppo[name]["seed_chunk_episodes"], ppo[name]["seed_chunk_mean_return"]
        assert len(episodes) == len(means) == 2 and all(len(e) == 1 for e in episodes)
        assert all(e[0] > 0 for e in episodes)
        for other, policy in (("random", "random"), ("heuristic", base[name]["best_heuristic"])):
            fig = speed["scenarios"][name][other]
            threshold = base[name]["policies"][policy]["mean"]
            assert fig["per_seed"] == [4096 if m[0] > threshold else None for m in means]
    section = text.split("## Learning speed")[1].split("## How it was produced")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == ["| scenario", "| easy", "| hard"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
