"""Where a command's wall time goes: start-up (the process's life before the command began:
interpreter, imports), compiles (count, seconds, persistent-cache hits, from
`bb_jax.compile_cache`), compiled training, evaluation, and host work (the rest: metrics,
logs, checkpoints, storage, sampling). Every command starts the one clock (`start`), the
training and evaluation code times its parts into it (`part`, `add`) and the command prints
and stores `split()`. The parts are disjoint: compiles inside a part count as compiles, a
part opened inside another counts in the outer one, so they add up to the wall time."""

from __future__ import annotations

import contextlib
import os
import time

from bb_jax import compile_cache

PARTS = ("training", "evaluation")  # timed by the code that runs them; the rest is host work


def _process_age() -> float:
    """Seconds since this process started (Linux /proc; 0.0 where that cannot be read)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[-1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class WallTime:
    """One command's clock: `started` (perf_counter), the start-up before it, and the seconds
    of each of PARTS (compiles taken out)."""

    def __init__(self):
        self.log = compile_cache.shared()
        self.first_compile = len(self.log.compiles)
        self.startup_s = _process_age()
        self.started = time.perf_counter()
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._open = 0

    def _compiled_s(self) -> float:
        return sum(c.seconds for c in self.log.compiles[self.first_compile:])

    @contextlib.contextmanager
    def part(self, name: str):
        """Time the block as `name`, less the compiles that happened in it; nested inside
        another part it counts there only."""
        if self._open:
            yield
            return
        self._open += 1
        compiled, start = self._compiled_s(), time.perf_counter()
        try:
            yield
        finally:
            self._open -= 1
            self.add(name, time.perf_counter() - start - (self._compiled_s() - compiled))

    def add(self, name: str, seconds: float) -> None:
        """Add seconds measured elsewhere (compiles already taken out) to part `name`."""
        if not self._open:
            self.seconds[name] += max(0.0, seconds)

    def split(self) -> dict:
        """{"wall_s", "startup_s", "compile": {"count", "seconds", "cache_hits"}, "training_s",
        "evaluation_s", "host_s", "training_share"}: seconds, the wall from process start."""
        command = time.perf_counter() - self.started
        compiles = self.log.compiles[self.first_compile:]
        compile_s = sum(c.seconds for c in compiles)
        wall = self.startup_s + command
        host = command - compile_s - sum(self.seconds.values())
        return {"wall_s": round(wall, 3), "startup_s": round(self.startup_s, 3),
                "compile": {"count": len(compiles), "seconds": round(compile_s, 3),
                            "cache_hits": sum(c.cache_hit for c in compiles)},
                **{f"{name}_s": round(s, 3) for name, s in self.seconds.items()},
                "host_s": round(max(0.0, host), 3),
                "training_share": round(self.seconds["training"] / wall, 4) if wall else None}

    def line(self) -> str:
        """The split as one line of a closing summary."""
        s = self.split()
        c = s["compile"]
        return (f"wall {s['wall_s']:.1f} s: start-up {s['startup_s']:.1f} s, compile "
                f"{c['seconds']:.1f} s ({c['count']} programs, {c['cache_hits']} from the "
                f"cache), training {s['training_s']:.1f} s, evaluation "
                f"{s['evaluation_s']:.1f} s, host work {s['host_s']:.1f} s")


_clock: WallTime | None = None


def start() -> WallTime:
    """Start the command's clock (each command calls it once, first thing)."""
    global _clock
    _clock = WallTime()
    return _clock


def part(name: str):
    """`WallTime.part` of the command's clock; nothing is recorded before `start`."""
    return contextlib.nullcontext() if _clock is None else _clock.part(name)


def add(name: str, seconds: float) -> None:
    """`WallTime.add` of the command's clock; nothing is recorded before `start`."""
    if _clock is not None:
        _clock.add(name, seconds)


def current() -> WallTime:
    """The command's clock (started now if no command started one)."""
    return _clock if _clock is not None else start()
