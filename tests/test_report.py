"""docs/RESULTS.md rendering and verdicts (bb_jax.train.report) on synthetic figures, and
one tiny real run of `report.main` (scripts/results_report.py)."""

from __future__ import annotations

import json

import pytest

from bb_jax.train import baselines
from bb_jax.train.report import compare, main, markdown, verdicts, write_outputs


def fig(mean, ci):
    return {"mean": mean, "ci95": ci}


def synthetic_results():
    def ppo(sampled, greedy):
        seeds = [greedy["mean"] - 1, greedy["mean"], greedy["mean"] + 1]
        return {"ppo_sampled": {**sampled, "per_seed": seeds},
                "ppo_greedy": {**greedy, "per_seed": seeds},
                "ppo_train_last100": {**sampled, "per_seed": seeds},
                "train_curve_mean": [1.0, 2.0], "train_curve_min": [0.0, 1.0],
                "train_curve_max": [2.0, 3.0]}

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
        # PPO clearly above both / above random but below the heuristic / a tie with both
        "ppo": {"easy": ppo(fig(1100, 10), fig(1110, 10)),
                "hard": ppo(fig(520, 10), fig(515, 10)),
                "default": ppo(fig(960, 30), fig(955, 30)),
                "trivial_cooperation": ppo(fig(1303.5, 6.9), fig(1303.9, 7.2))},
        "baselines": {"easy": base(fig(980, 3), "coordinator", fig(1000, 3)),
                      "hard": base(fig(470, 4), "firefighter", fig(560, 4)),
                      "default": base(fig(958, 3), "coordinator", fig(975, 3)),
                      "trivial_cooperation": base(fig(1300, 0.1), "liar", fig(1303.6, 0.1))},
        "curve_env_steps": [2048, 4096], "members": 9, "env_steps_per_member": 4096,
        "train_wall_s": 10.0, "eval_wall_s": 1.0, "baseline_wall_s": 1.0, "wall_s": 12.0,
    }
    results["verdicts"] = verdicts(results)
    return results


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
    code = main(["--num-steps", "4096", "--seeds", "0", "1", "--scenarios", "easy", "hard",
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
    text = md.read_text()
    assert "| easy |" in text and "| hard |" in text and "![results](results.png)" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
