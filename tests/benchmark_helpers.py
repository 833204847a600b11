"""A benchmark script of benchmarks/ loaded as a module, for its smoke test."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (its `main(argv)` runs it in this process)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass (e.g. a flax Module) looks its module up there
    spec.loader.exec_module(module)
    return module
