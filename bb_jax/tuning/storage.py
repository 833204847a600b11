"""Study storage from a URL: in-memory (None), SQLite, PostgreSQL / MySQL (RDB), or a journal
file (`journal:///path/to/study.log`, several processes on one machine or a shared disk).

- `postgresql://` (and `postgres://`) use psycopg 3, the driver `bb-jax[postgres]` installs
  (SQLAlchemy would otherwise pick psycopg2); `postgresql+psycopg2://` still selects psycopg2.
- SQLite: every transaction starts with `BEGIN IMMEDIATE` and waits up to 120 s for the lock, so
  several processes on one file queue up instead of failing with "database is locked" or
  racing each other for the same waiting trial.
- Opening a database that other workers are initialising at the same moment is retried.
- Passwords are redacted (`redact`) before anything is printed or written, in every form
  libpq and SQLAlchemy take: the URL's user-info (`user:PASSWORD@`), a `password=` (or
  `sslpassword=`, `passwd=`) query parameter or connection-string keyword, and the value of
  $PGPASSWORD wherever it appears; a URL without a password may take it from the environment
  (libpq's PGPASSWORD or ~/.pgpass).
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from pathlib import Path

import optuna

from bb_jax.tuning.liveness import ReasonedRDBStorage

# Heartbeats are used on purpose with ask-and-tell (bb_jax.tuning.liveness records them).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                        message=".*heartbeat_interval.*")
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")

STORAGE_FORMS = "sqlite:///PATH, postgresql://USER:PASSWORD@HOST[:PORT]/DB, journal:///PATH"
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2",
                "mysql", "mysql+pymysql")
SQLITE_TIMEOUT_S = 120
CONNECT_TIMEOUT_S = 10
# Errors that mean "another process is creating the same tables / rows right now".
_RACE_MARKERS = ("already exists", "duplicate key", "UniqueViolation", "UNIQUE constraint",
                 "database is locked", "IntegrityError")
_OPEN_ATTEMPTS = 6

# user:password@ in any scheme://... URL; the password runs to the last '@' of the URL.
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)[^\s'\"]*@")
# password=VALUE as a URL query parameter (?password=, &password=) or a libpq keyword
# (password=VALUE or password='a quoted value'), and its relatives sslpassword, passwd and
# PGPASSWORD=VALUE
_KEYWORD = re.compile(r"(?i)(?P<key>\b(?:ssl|pg)?pass(?:word|wd)\s*=\s*)"
                      r"(?P<value>'(?:[^'\\]|\\.)*'|[^\s&'\";]+)")
_ENV_PASSWORD = "PGPASSWORD"


class StorageError(ValueError):
    """A storage URL that is malformed or cannot be reached."""


_SECRETS: set[str] = set()


def redact(text: str) -> str:
    """Replace every password in `text` with ***: a URL's user-info password, a password=
    query parameter or keyword, $PGPASSWORD's value, and any password of a storage URL seen
    by `validate_url` wherever it appears on its own (e.g. quoted in a driver message)."""
    text = _PASSWORD.sub(r"\g<head>***@", text)
    text = _KEYWORD.sub(r"\g<key>***", text)
    env = os.environ.get(_ENV_PASSWORD, "")
    for secret in sorted({*_SECRETS, *([env] if len(env) >= 3 else [])}, key=len,
                         reverse=True):
        text = text.replace(secret, "***")
    return text


def _remember_password(url: str) -> None:
    """Keep the URL's passwords (user-info and password= query parameters), plain and
    percent-decoded, so `redact` finds them wherever a driver quotes them."""
    from urllib.parse import unquote

    found = [m["value"] for m in _KEYWORD.finditer(url.split("?", 1)[1] if "?" in url else "")]
    match = re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:(?P<pw>.*)@[^@]*$", url.split("?")[0])
    if match:
        found.append(match["pw"])
    for secret in found:
        if len(secret) >= 3:  # too short to replace safely inside other text
            _SECRETS.update({secret, unquote(secret)})


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else ""


def _malformed(url: str) -> StorageError:
    return StorageError(f"malformed storage URL {redact(url)!r}; use {STORAGE_FORMS}")


def storage_file(url: str | None) -> Path | None:
    """The file a SQLite or journal URL names (None for other storages)."""
    for scheme, prefix in (("sqlite", "sqlite:///"), ("journal", "journal://")):
        if url is not None and scheme_of(url) == scheme and url[len(prefix):] not in ("",
                                                                                    ":memory:"):
            return Path(url[len(prefix):])
    return None


def holds_nothing(url: str | None) -> bool:
    """Whether `url` certainly holds no study yet: in memory, or a SQLite or journal file that
    does not exist (opening it would create it)."""
    if url is None:
        return True
    for scheme, prefix in (("sqlite", "sqlite:///"), ("journal", "journal://")):
        if scheme_of(url) == scheme:
            return not Path(url[len(prefix):]).exists()
    return False


def validate_url(url: str | None) -> None:
    """Raise StorageError for a URL of no known form (before anything is created)."""
    if url is None:
        return
    _remember_password(url)
    scheme = scheme_of(url)
    if scheme == "journal":
        if not url[len("journal://"):]:
            raise _malformed(url)
        return
    if scheme not in _RDB_SCHEMES:
        raise _malformed(url)
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or not url[len("sqlite:///"):]:
            raise _malformed(url)
        return
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(sqlalchemy_url(url))
        parsed.port  # noqa: B018  (a non-numeric port raises here)
    except Exception:
        raise _malformed(url) from None
    if not parsed.database:
        raise StorageError(f"storage URL {redact(url)!r} names no database; use {STORAGE_FORMS}")


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy gets: plain postgresql:// and postgres:// select psycopg 3."""
    scheme = scheme_of(url)
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_storage(url: str | None, heartbeat_interval: int | None = 30
                 ) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url` (None: in-memory); an RDB one says why it fails trials of
    stale heartbeats (`liveness.ReasonedRDBStorage`). Raises StorageError, redacted, when the
    URL is malformed or the database cannot be reached."""
    validate_url(url)
    if url is None:
        return optuna.storages.InMemoryStorage()
    if scheme_of(url) == "journal":
        return _journal_storage(Path(url[len("journal://"):]))
    engine_kwargs = {"pool_pre_ping": True}
    if scheme_of(url) == "sqlite":
        path = Path(url[len("sqlite:///"):])
        if str(path) != ":memory:" and not path.parent.is_dir():
            raise StorageError(f"folder of SQLite database {path} does not exist")
        _install_sqlite_hooks()
        # Autocommit at the driver level; the `begin` hook then issues BEGIN IMMEDIATE.
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S, "isolation_level": None}
        # Deferred BEGIN while Optuna sets up the schema (its version check reads through a
        # second connection inside a transaction), BEGIN IMMEDIATE from then on.
        engine_kwargs["execution_options"] = {_IMMEDIATE: False}
    else:
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    for attempt in range(_OPEN_ATTEMPTS):
        started = time.monotonic()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = ReasonedRDBStorage(
                    sqlalchemy_url(url), engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=None if heartbeat_interval is None else 4 * heartbeat_interval,
                )
            if scheme_of(url) == "sqlite":
                storage.engine.update_execution_options(**{_IMMEDIATE: True})
            return storage
        except ImportError as err:
            name = getattr(err.__cause__, "name", None) or err.name or "the driver"
            raise StorageError(f"no database driver for {scheme_of(url)} ({name} is missing); "
                               "install bb-jax[postgres] for PostgreSQL") from None
        except Exception as err:  # SQLAlchemy's errors vary by driver: report them in one line
            text = f"{type(err).__name__}: {err} {err.__cause__!r}"
            quick = time.monotonic() - started < CONNECT_TIMEOUT_S  # not a lock wait run out
            if attempt + 1 < _OPEN_ATTEMPTS and quick and any(m in text for m in _RACE_MARKERS):
                time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
                continue  # another worker is creating the schema at this moment
            raise StorageError(f"cannot use storage {redact(url)}: {describe_error(err)}") from None
    raise AssertionError("unreachable")


def describe_error(err: BaseException) -> str:
    """One redacted line naming what went wrong in the database ("attempt to write a readonly
    database", "database or disk is full", "file is not a database"), not Optuna's wrapper,
    which guesses "e.g. exceeding max length" for any failed commit."""
    while (isinstance(err, optuna.exceptions.StorageInternalError)
           and err.__cause__ is not None):
        err = err.__cause__
    text = str(err).strip()
    if not text:
        return type(err).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # psycopg puts the useful part ("Connection refused", "password authentication failed")
    # on the first line or two; SQLAlchemy appends a background link.
    line = lines[0]
    if len(lines) > 1 and not lines[1].startswith("(Background") and len(line) < 80:
        line += " " + lines[1]
    return redact(line)


def error_text(err: BaseException) -> str:
    """An unexpected error's text, redacted: for a failed commit the database's own cause
    (`describe_error`), else the error's message."""
    if isinstance(err, optuna.exceptions.StorageInternalError):
        return describe_error(err)
    return redact(str(err))


def check_writable(storage: optuna.storages.BaseStorage, url: str | None) -> None:
    """Raise StorageError, before any work, when `url`'s database cannot be written: a SQLite
    file or folder that is read-only (a write is tried inside a transaction and rolled back;
    a full disk shows only when a commit grows the file), a journal file that cannot be
    appended to, a PostgreSQL or MySQL database that is read-only or a role that may only
    read the study tables (`_probe_study_tables`)."""
    scheme = scheme_of(url or "")
    try:
        if scheme == "journal":
            with open(url[len("journal://"):], "ab"):
                pass
        elif scheme == "sqlite":
            connection = storage.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    cursor.execute("CREATE TABLE bb_jax_write_probe (x)")
                finally:
                    cursor.execute("ROLLBACK")
            finally:
                connection.close()
        elif scheme in _RDB_SCHEMES:
            _probe_study_tables(storage.engine)
    except Exception as err:
        text = err.strerror if isinstance(err, OSError) and err.strerror else describe_error(err)
        raise StorageError(f"cannot write to storage {redact(url)}: {text}") from None


def _probe_study_tables(engine) -> None:
    """An INSERT and an UPDATE that match no row on each of Optuna's study and trial tables,
    in a transaction rolled back: the database checks the transaction's read-only state
    (default_transaction_read_only, a standby server) and the role's privileges before it
    looks for rows, so this fails as storing a result would, and changes nothing. (Creating a
    probe table, as for SQLite, would need a privilege storing never uses.)"""
    from sqlalchemy import inspect, text

    with engine.connect() as connection, connection.begin() as transaction:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            if table.startswith(("stud", "trial")):
                column = inspector.get_columns(table)[0]["name"]
                connection.execute(text(f"INSERT INTO {table} SELECT * FROM {table} WHERE 1 = 0"))
                connection.execute(text(f"UPDATE {table} SET {column} = {column} WHERE 1 = 0"))
        transaction.rollback()


def _journal_storage(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))
    except OSError as err:
        raise StorageError(f"cannot open journal file {path}: {err.strerror or err}") from None


_IMMEDIATE = "bb_jax_sqlite_begin_immediate"
_hooks_installed = False


def _install_sqlite_hooks() -> None:
    """pysqlite opens transactions lazily (only before a write), so a read followed by a
    write is not atomic across processes (two workers could both take the same WAITING trial)
    and lock upgrades can fail at once with "database is locked". Engines made by
    `make_storage` for SQLite carry an execution option that makes every transaction
    `BEGIN IMMEDIATE` (SQLAlchemy's documented pysqlite recipe); other engines are untouched."""
    global _hooks_installed
    if _hooks_installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "begin")
    def _begin_immediate(conn):
        immediate = conn.engine.get_execution_options().get(_IMMEDIATE)
        if immediate is not None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    _hooks_installed = True
