"""scripts/evaluate.py on a tiny saved run: the policy's figure with its interval beside every
baseline in the learner's seat, reproducible from its key (slow: it trains the run); an
untrained saved network read back and evaluated; usage errors in one line."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from bb_jax.cli import evaluate_main, train_main
from bb_jax.runtime.baselines import BASELINES


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory):
    """A saved run's files for an initialised, untrained network (no training compiles)."""
    import jax
    from flax import serialization

    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
    from bb_jax.agent.ppo import PPO
    from bb_jax.runtime.saved_runs import config_json

    folder = tmp_path_factory.mktemp("untrained")
    config = PPOConfig(scenario="easy", hidden_size=32, batch_size=512, total_steps=4096)
    ppo = PPO(config)
    (folder / "config.json").write_text(json.dumps(
        {"seeds": [1, 2], "scenarios": ["easy"], **config_json(config, DEFAULT_HYPERPARAMS)}))
    for seed in (1, 2):
        params = ppo.network.init(jax.random.PRNGKey(seed),
                                  jax.numpy.zeros((ppo.input_size,)))
        (folder / f"params_seed{seed}.msgpack").write_bytes(serialization.to_bytes(params))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate") / "run"
    assert train_main(["--scenario", "easy", "--num-steps", "4096", "--batch-size", "512",
                       "--hidden-size", "32", "--seeds", "1", "2", "--eval-episodes", "8",
                       "--save-path", str(folder)]) == 0
    return folder


@pytest.mark.slow
def test_the_policy_beside_every_baseline(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--results-json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("easy against hero, liar (64 fresh episodes")
    assert "policy (sampled)" in lines[1] and "95% CI over 2 seeds" in lines[1]
    assert sorted(line.split()[0] for line in lines[2:]) == sorted(BASELINES)
    figures = json.loads(out.read_text())
    assert figures["opponents"] == ["hero", "liar"]
    assert set(figures["policy"]["per_seed"]) == {"1", "2"}
    assert 0 < figures["policy"]["ci95"] < 500
    # the same key gives the same figures; another key other episodes
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--results-json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == figures
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--seed", "1", "--results-json", str(tmp_path / "other.json")]) == 0
    assert json.loads((tmp_path / "other.json").read_text())["policy"] != figures["policy"]


@pytest.mark.parametrize("argv,message", [
    (["{run}", "--opponents", "hero,ghost"], "unknown opponent kind 'ghost'; valid kinds:"),
    (["{run}", "--opponents", "hero"], "--opponents needs 2 kinds"),
    (["{run}", "--scenario", "nowhere"], "unknown scenario 'nowhere'; valid scenarios:"),
    (["{tmp}"], "holds no finished run"),
    (["{run}", "--episodes", "1"], "--episodes must be >= 2"),
])
def test_usage_errors(untrained_run, tmp_path, capsys, argv, message):
    code = evaluate_main([a.format(run=untrained_run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_an_untrained_run_reads_back_and_plays(untrained_run, capsys):
    assert evaluate_main([str(untrained_run), "--episodes", "16", "--greedy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "policy (greedy)" in lines[1] and len(lines) == 3 + len(BASELINES)
    assert lines[-1].startswith("wall ") and "host work" in lines[-1]  # where the time went


class _Page(HTMLParser):
    """The replay page's frames (houses' states and agents per night) and embedded data."""

    def __init__(self):
        super().__init__()
        self.frames, self.data, self.urls, self._json = [], None, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        classes = (attrs.get("class") or "").split()
        if tag == "g" and "frame" in classes:
            self.frames.append({"houses": [], "agents": []})
        elif tag == "circle" and "house" in classes:
            self.frames[-1]["houses"].append(classes[1])
        elif tag == "circle" and "agent" in classes:
            self.frames[-1]["agents"].append(classes[1])
        self._json = tag == "script" and attrs.get("id") == "episode"

    def handle_data(self, data):
        if self._json:
            self.data, self._json = json.loads(data), False


@pytest.mark.slow
def test_the_replay_shows_the_episode_the_evaluation_counted(untrained_run, tmp_path, capsys):
    """--replay writes one page: a frame per night plus the start, ten houses each, every
    agent in each night's frame; its return is the sum of its nights' rewards and the return
    of that very episode in the evaluation (episode 0 of the first seed); no network URL."""
    import jax

    from bb_jax.runtime.evaluation import policy_returns
    from bb_jax.runtime.saved_runs import load_run

    page = tmp_path / "replay.html"
    assert evaluate_main([str(untrained_run), "--episodes", "16", "--replay", str(page)]) == 0
    line = capsys.readouterr().out.splitlines()[-2]  # the last says where the time went
    parsed = _Page()
    parsed.feed(page.read_text())
    data = parsed.data
    assert parsed.urls == [] and "http" not in page.read_text()
    assert len(parsed.frames) == data["nights"] + 1 and data["nights"] >= 1
    assert all(len(f["houses"]) == 10 for f in parsed.frames)
    assert parsed.frames[0]["agents"] == [] and all(len(f["agents"]) == 3
                                                    for f in parsed.frames[1:])
    names = ("safe", "burning", "ruined")
    assert [[names[s] for s in row] for row in data["houses"]] == [f["houses"]
                                                                   for f in parsed.frames]
    assert sum(data["rewards"]) == pytest.approx(data["return"])
    counted = policy_returns(load_run(untrained_run), "easy", None, 16, jax.random.PRNGKey(0))
    assert data["return"] == pytest.approx(float(counted[data["seed"]][0]))
    assert f"return {data['return']:.1f}" in line and str(page) in line


@pytest.mark.slow
def test_the_replay_plays_in_a_headless_browser(untrained_run, tmp_path):
    """Debian's chromium renders the page offline and its script runs: after load exactly one
    night is shown (the start) and the screenshot is a real image."""
    import shutil
    import subprocess

    browser = shutil.which("chromium")
    assert browser, "needs Debian's chromium (apt-get install chromium)"
    page = tmp_path / "replay.html"
    assert evaluate_main([str(untrained_run), "--episodes", "16", "--replay", str(page)]) == 0
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    shown = [chunk for chunk in dom.split('<g class="frame"')[1:]
             if 'style="display: none;"' not in chunk.split(">", 1)[0]]
    assert len(shown) == 1 and 'data-night="0"' in shown[0]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=600,700", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_a_replay_page_draws_every_night_of_a_hand_made_episode(tmp_path):
    """write_replay on an episode built by hand (two agents, three nights): a frame per night
    and the start, the houses' states and agents' modes as given, no network URL."""
    from bb_jax.cli.replay_page import write_replay

    houses = [[0] * 10, [1] + [0] * 9, [2] + [1] + [0] * 8, [2, 2] + [0] * 8]
    actions = [[[0, 1], [5, 0]], [[1, 1], [0, 0]], [[3, 0], [3, 1]]]
    episode = {"seed": 7, "return": 1.5, "houses": houses, "actions": actions,
               "reward": [0.5, -1.0, 2.0]}
    page = write_replay(tmp_path / "r.html", episode, "hand-made")
    parsed = _Page()
    parsed.feed(page.read_text())
    assert parsed.urls == [] and "http" not in page.read_text()
    names = ("safe", "burning", "ruined")
    assert [f["houses"] for f in parsed.frames] == [[names[s] for s in row] for row in houses]
    assert [f["agents"] for f in parsed.frames] == [[], ["work", "rest"], ["work", "rest"],
                                                    ["rest", "work"]]
    assert parsed.data["rewards"] == [0.5, -1.0, 2.0] and parsed.data["nights"] == 3
