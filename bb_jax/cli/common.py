"""What every command line shares: usage errors as one line with exit code 2, checks of
scenarios, output folders and outputs against inputs, and JAX's persistent compilation
cache."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax

from bb_jax.game.scenarios import list_scenarios

USAGE_ERROR = 2
STORAGE_ENV = "BB_JAX_STORAGE"


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit code 2) instead of the usage."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        """argparse's add_argument, keeping each option in `self.options` (for
        `command_line`); a help text that does not say its default gets it appended."""
        help_text = kwargs.get("help")
        if kwargs.get("action") != "help" and help_text is not argparse.SUPPRESS and not (
                help_text and ("default:" in help_text or "%(default)" in help_text)):
            shown = ("off" if kwargs.get("action") == "store_true" else
                     "none" if kwargs.get("default") is None else "%(default)s")
            kwargs["help"] = f"{help_text} (default: {shown})" if help_text else \
                f"default: {shown}"
        action = super().add_argument(*args, **kwargs)
        self.__dict__.setdefault("options", []).append(action)
        return action


def _token(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def command_line(parser: OneLineParser, namespace: argparse.Namespace,
                 leave_out: tuple[str, ...] = ()) -> list[str]:
    """The arguments that `parser` parses back into `namespace` (but for the options whose
    dest is in `leave_out`): every option whose value differs from its default, so a flag
    added to the parser travels without further code. Floats are written with repr (exact)."""
    args = []
    values = vars(namespace)
    for action in parser.options:
        if action.dest not in values or action.dest in leave_out:
            continue
        value = values[action.dest]
        if value == action.default:
            continue
        if action.nargs == 0:  # the flag alone sets the value (--x / --no-x for booleans)
            negative = [o for o in action.option_strings if o.startswith("--no-")]
            args.append(negative[0] if value is False and negative else action.option_strings[0])
        elif isinstance(value, (list, tuple)):  # nargs="+"
            args += [action.option_strings[-1], *map(_token, value)]
        else:
            args += [action.option_strings[-1], _token(value)]
    return args


def fail(prog: str, message: str) -> int:
    """Print `message` as one usage-error line of `prog`; the exit code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def check_scenario(name: str) -> str:
    if name not in list_scenarios():
        valid = ", ".join(list_scenarios())
        raise UsageError(f"unknown scenario {name!r}; valid scenarios: {valid}")
    return name


def parse_scenarios(text: str) -> tuple[str, ...]:
    names = list_scenarios() if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError(f"no scenario given; valid scenarios: {', '.join(list_scenarios())}")
    for name in names:
        check_scenario(name)
    return tuple(dict.fromkeys(names))


def check_writable_dir(path: Path, keep: bool = True) -> Path:
    """Make sure files can be written in `path`, creating it if needed. With keep=False the
    folders created for the check are removed again (nothing is left behind when a later
    check fails; the outputs create them when they are written)."""
    created = []
    try:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe = path / f".bb_jax_write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"output folder {path} is not writable: {err.strerror or err}") from None
    finally:
        if not keep:
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    pass
    return path


MAX_STUDY_NAME = 100  # characters: output files are named STUDY_*.html within the name limit


def check_study_name(name: str | None) -> None:
    """A study name becomes file names in the output folder: refuse one that is empty, longer
    than MAX_STUDY_NAME, or holds a path separator, a control character or a leading dot."""
    if name is None:
        return
    if not 0 < len(name) <= MAX_STUDY_NAME or name.startswith(".") or any(
            c in "/\\" or not c.isprintable() for c in name):
        raise UsageError(f"--study-name {name!r}: use 1..{MAX_STUDY_NAME} printable characters "
                         "without / or \\ and not starting with a dot")


def _identity(path) -> tuple:
    """What names one file: its device and inode where it exists (links included), else its
    absolute path with symbolic links resolved."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
        return ("inode", stat.st_dev, stat.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def check_not_inputs(outputs: list[tuple[str, str | Path | None]],
                     inputs: list[tuple[str, str | Path | None]]) -> None:
    """Refuse (UsageError, one line) an output path that is an input or another output: no
    command writes onto a file it reads. outputs, inputs: (what, path or None) pairs, what a
    flag or a name such as "the run"."""
    seen = {_identity(path): (what, "reads") for what, path in inputs if path}
    for what, path in outputs:
        if not path:
            continue
        key = _identity(path)
        if key in seen and seen[key][0] != what:
            other, verb = seen[key]
            raise UsageError(f"{what} {path} is a file {other} {verb}: writing it there would "
                             "destroy that; choose another path")
        seen[key] = (what, "writes")


def enable_compile_cache() -> Path:
    """Turn on JAX's persistent compilation cache (BB_JAX_CACHE_DIR, default
    ~/.cache/bb_jax/xla) so a second run with the same shapes starts without compiling."""
    path = Path(os.environ.get("BB_JAX_CACHE_DIR", Path.home() / ".cache" / "bb_jax" / "xla"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
