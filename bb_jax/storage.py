"""Study storage from a URL: in-memory (None), SQLite, PostgreSQL / MySQL (RDB), or a journal
file (`journal:///path/to/study.log`, several processes on one machine or a shared disk).
Passwords in URLs are redacted before anything is printed or written."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna

# Heartbeats are used on purpose with ask-and-tell (bb_jax.tune records them itself).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                        message=".*heartbeat_interval.*")
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")

STORAGE_FORMS = "sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB, journal:///PATH"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql",
                "mysql+pymysql")


class StorageError(ValueError):
    """A storage URL that is malformed or cannot be reached."""


def redact(text: str) -> str:
    """Replace the password of any URL in `text` with ***."""
    return re.sub(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)",
                  r"\g<head>***", text)


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else ""


def validate_url(url: str | None) -> None:
    """Raise StorageError for a URL of no known form (before anything is created)."""
    if url is None:
        return
    scheme = scheme_of(url)
    if scheme == "journal":
        if not url[len("journal://"):]:
            raise StorageError(f"malformed storage URL {redact(url)!r}; use {STORAGE_FORMS}")
        return
    if scheme not in _RDB_SCHEMES:
        raise StorageError(f"malformed storage URL {redact(url)!r}; use {STORAGE_FORMS}")
    if scheme == "sqlite" and not url.startswith("sqlite:///"):
        raise StorageError(f"malformed storage URL {redact(url)!r}; use {STORAGE_FORMS}")


def make_storage(url: str | None, heartbeat_interval: int | None = 30):
    """An Optuna storage for `url` (None: in-memory). Raises StorageError, redacted, when the
    URL is malformed or the database cannot be reached."""
    validate_url(url)
    if url is None:
        return None
    if scheme_of(url) == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = Path(url[len("journal://"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))
        except OSError as err:
            raise StorageError(f"cannot open journal file {path}: {err.strerror or err}")
    engine_kwargs = {"pool_pre_ping": True}
    if scheme_of(url) == "sqlite":
        # Several processes on one SQLite file: wait for the lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 120}
        path = Path(url[len("sqlite:///"):])
        if str(path) and not path.parent.exists():
            raise StorageError(f"folder of SQLite database {path} does not exist")
    else:
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
            grace_period=None if heartbeat_interval is None else 4 * heartbeat_interval,
        )
    except ImportError as err:
        raise StorageError(f"no database driver for {scheme_of(url)} ({err.name} is missing); "
                           "install bb-jax[postgres] for PostgreSQL")
    except Exception as err:  # SQLAlchemy's errors vary by driver: report them in one line
        message = redact(str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise StorageError(f"cannot use storage {redact(url)}: {message}")
