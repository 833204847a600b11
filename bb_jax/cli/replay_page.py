"""One self-contained HTML page that replays an episode night by night: the ring of ten
houses (safe, burning, ruined), where each agent went and whether it worked or rested, the
learner's reward and return. Every night is drawn in advance as an SVG group; the inline
script only shows one at a time (play, step, slider), so the page needs no network and its
content can be read without running it."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

STATE_NAMES = ("safe", "burning", "ruined")
COLOURS = {"safe": "#4caf50", "burning": "#ff5722", "ruined": "#616161"}
CENTRE, RING, HOUSE_R = 230, 140, 24

_SCRIPT = """
const frames = [...document.querySelectorAll('g.frame')];
const slider = document.getElementById('night');
let shown = 0, timer = null;
function show(i) {
  shown = Math.max(0, Math.min(frames.length - 1, i));
  frames.forEach((f, k) => { f.style.display = k === shown ? '' : 'none'; });
  slider.value = shown;
}
document.getElementById('prev').onclick = () => show(shown - 1);
document.getElementById('next').onclick = () => show(shown + 1);
slider.oninput = () => show(Number(slider.value));
document.getElementById('play').onclick = () => {
  if (timer) { clearInterval(timer); timer = null; return; }
  timer = setInterval(() => { if (shown === frames.length - 1) { clearInterval(timer);
    timer = null; } else { show(shown + 1); } }, 700);
};
show(0);
"""


def _position(house: int, radius: float) -> tuple[float, float]:
    angle = 2 * math.pi * house / 10 - math.pi / 2
    return CENTRE + radius * math.cos(angle), CENTRE + radius * math.sin(angle)


def _frame(night: int, houses, actions, caption: str) -> str:
    """One night's SVG group: houses after the night, each agent at the house it chose
    (filled: worked; hollow: rested; the learner, agent 0, in blue)."""
    parts = [f'<g class="frame" data-night="{night}">']
    for h, state in enumerate(houses):
        x, y = _position(h, RING)
        name = STATE_NAMES[int(state)]
        parts.append(f'<circle class="house {name}" data-house="{h}" cx="{x:.1f}" cy="{y:.1f}" '
                     f'r="{HOUSE_R}" fill="{COLOURS[name]}"/>'
                     f'<text x="{x:.1f}" y="{y + 5:.1f}" text-anchor="middle" '
                     f'fill="white">{h}</text>')
    for agent, (house, mode) in enumerate(actions):
        x, y = _position(int(house), RING + HOUSE_R + 14 + 16 * agent)
        colour = "#1e88e5" if agent == 0 else "#8e24aa"
        fill = colour if mode == 1 else "white"
        kind = "work" if mode == 1 else "rest"
        parts.append(f'<circle class="agent {kind}" data-agent="{agent}" cx="{x:.1f}" '
                     f'cy="{y:.1f}" r="7" fill="{fill}" stroke="{colour}" stroke-width="2"/>')
    parts.append(f'<text class="caption" x="{CENTRE}" y="{CENTRE + 5}" '
                 f'text-anchor="middle">{html.escape(caption)}</text></g>')
    return "".join(parts)


def write_replay(path: Path, episode: dict, title: str) -> Path:
    """Write the page of `episode` (`bb_jax.runtime.evaluation.record_episode`) to `path`."""
    rewards = [float(r) for r in episode["reward"]]
    frames = [_frame(0, episode["houses"][0], [], "start")]
    total = 0.0
    for t, reward in enumerate(rewards):
        total += reward
        frames.append(_frame(t + 1, episode["houses"][t + 1], episode["actions"][t],
                             f"night {t + 1}: reward {reward:+.1f}, return {total:.1f}"))
    data = {"seed": episode["seed"], "return": episode["return"], "nights": len(rewards),
            "rewards": rewards, "houses": [[int(v) for v in row] for row in episode["houses"]]}
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 1em; }} .caption {{ font-size: 15px; }}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Seed {episode["seed"]}, {len(rewards)} nights, learner's return
<span id="return">{episode["return"]:.1f}</span>. Houses: green safe, orange burning, grey
ruined. Agents outside their house: blue the learner, purple the opponents; filled worked,
hollow rested.</p>
<svg width="{2 * CENTRE}" height="{2 * CENTRE}" viewBox="0 0 {2 * CENTRE} {2 * CENTRE}">
{"".join(frames)}
</svg>
<div><button id="prev">previous</button> <button id="play">play / pause</button>
<button id="next">next</button>
<input id="night" type="range" min="0" max="{len(rewards)}" value="0"></div>
<script type="application/json" id="episode">{json.dumps(data)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    Path(path).write_text(page)
    return Path(path)
