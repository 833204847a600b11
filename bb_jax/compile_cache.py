"""What a process compiled, read from JAX's public monitoring events: each backend compile's
program name, seconds, and whether the persistent compilation cache served it
(`bb_jax.cli.common.enable_compile_cache` turns that cache on in every command)."""

from __future__ import annotations

import dataclasses
import threading

from jax import monitoring

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # wraps cache read or compile
_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # recorded inside it, on a hit


@dataclasses.dataclass(frozen=True)
class Compile:
    """One program: its name (e.g. "jit_run_updates"), the seconds its backend step took and
    whether the persistent cache served it (a hit reads, it does not compile)."""

    name: str
    seconds: float
    cache_hit: bool


class CompileLog:
    """Records every backend compile of the process from the moment it starts listening
    (`start`); `compiles` in the order they happened. One per process is enough (`shared`)."""

    def __init__(self):
        self.compiles: list[Compile] = []
        self._hit = threading.local()

    def start(self) -> CompileLog:
        monitoring.register_event_listener(self._on_event)
        monitoring.register_event_duration_secs_listener(self._on_duration)
        return self

    def stop(self) -> None:
        monitoring.unregister_event_listener(self._on_event)
        monitoring.unregister_event_duration_listener(self._on_duration)

    def _on_event(self, event: str, **_) -> None:
        if event == _HIT_EVENT:
            self._hit.value = True

    def _on_duration(self, event: str, seconds: float, **kwargs) -> None:
        if event != _COMPILE_EVENT:
            return
        name = str(kwargs.get("fun_name", "?"))
        self.compiles.append(Compile(name, float(seconds), getattr(self._hit, "value", False)))
        self._hit.value = False

    def summary(self) -> dict:
        """{"count": compiles, "seconds": their total, "cache_hits": those the cache served,
        "compiled": names of the programs XLA compiled (not served by the cache)}."""
        return {"count": len(self.compiles),
                "seconds": round(sum(c.seconds for c in self.compiles), 3),
                "cache_hits": sum(c.cache_hit for c in self.compiles),
                "compiled": [c.name for c in self.compiles if not c.cache_hit]}


_shared: CompileLog | None = None


def shared() -> CompileLog:
    """The process's CompileLog, listening from the first call on."""
    global _shared
    if _shared is None:
        _shared = CompileLog().start()
    return _shared
