"""Progress: plain lines with an ETA when stdout is not a terminal (logs, CI), a tqdm bar
when it is."""

from __future__ import annotations

import io

from bb_jax import progress
from bb_jax.progress import Progress


def test_plain_lines_count_up_and_estimate_the_time_left(monkeypatch):
    clock = iter([100.0, 110.0, 130.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    lines = []
    bar = Progress(400, "steps", "step", log=lines.append)
    bar.update(100, "return 1.0")  # 10 s for 100: 30 s for the 300 left
    bar.update(300, "return 2.0")  # 30 s for 300: 10 s for the 100 left
    bar.close()
    assert lines == ["steps       100/400  return 1.0  ETA 30 s",
                     "steps       300/400  return 2.0  ETA 10 s"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_with_the_count_and_the_text(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(progress.sys, "stdout", screen)
    bar = Progress(10, "trials", "trial")
    assert bar.bar is not None
    bar.update(4, "best 12.5")
    bar.close()
    shown = screen.getvalue()
    assert "trials" in shown and "4/10" in shown and "best 12.5" in shown
    assert Progress(10, "trials", "trial", log=print).bar is None  # a log of its own: lines
