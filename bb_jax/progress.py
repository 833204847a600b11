"""Progress of a long job (env steps of a training run, runs of a validation): a tqdm bar
with its ETA on a terminal, plain lines with the ETA otherwise, so logs and CI stay
readable."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm


class Progress:
    """`total` units of work; `update(done, text)` after each piece. `log` prints the plain
    lines (default: print); the bar is used only when `log` is print and stdout a terminal."""

    def __init__(self, total: int, desc: str, unit: str,
                 log: Callable[[str], None] | None = None):
        self.total, self.desc, self.started = total, desc, time.perf_counter()
        self.log = log or (lambda line: print(line, flush=True))
        self.bar = (tqdm(total=total, desc=desc, unit=unit, unit_scale=total >= 10_000,
                         file=sys.stdout, dynamic_ncols=True)
                    if log is None and sys.stdout.isatty() else None)

    def update(self, done: int, text: str = "") -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(text)
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total - done) if done else float("nan")
        self.log(f"{self.desc} {done:>9,}/{self.total:,}  {text}  ETA {eta:.0f} s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
