"""Card feedback store: a real database, idempotent per (card, outcome, accepted suggestions).

Two implementations of one small interface (``record``, ``remember_jti``, ``count``, ``ping``, ``close``),
chosen by the URL's scheme with ``open_store(url)`` (``FeedbackStore(url)`` does the same):

- ``sqlite:///path`` (default): one file, WAL mode so several gunicorn workers of one host can write; every
  write is one ``BEGIN IMMEDIATE`` transaction.
- ``postgresql://user:password@host:port/db`` (or ``postgres://``): one store shared by several replicas
  (psycopg 3). Writes are ``INSERT ... ON CONFLICT DO NOTHING`` in one transaction, rows in key order so two
  overlapping batches cannot deadlock; a dropped connection is reopened and the write retried (it is idempotent).

The schema is versioned (table ``schema_version``, one row per migration applied). Migrations are forward
only and additive, and run at start in one transaction that first takes a lock, so several workers or pods
starting at once apply each migration exactly once: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory
lock on PostgreSQL. A database already migrated further by a newer release is used as it is (rolling updates).

Connections are per process and per thread, opened lazily: the process that migrates closes its connection, and a
connection inherited through ``fork`` (gunicorn's ``preload_app``) is never used or closed by the child. The
URL's password never appears in a log line, an error message or ``repr``.
"""
from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

# Each migration: SQL per dialect. Append only; never edit or reorder an applied one.
MIGRATIONS: list[dict[str, str]] = [
    {
        "sqlite": """CREATE TABLE IF NOT EXISTS feedback (
            service_id TEXT NOT NULL,
            card TEXT NOT NULL,
            outcome TEXT NOT NULL,
            accepted_suggestions TEXT NOT NULL DEFAULT '',
            override_system TEXT,
            override_code TEXT,
            user_comment TEXT,
            outcome_timestamp TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (card, outcome, accepted_suggestions)
        )""",
        "postgresql": """CREATE TABLE IF NOT EXISTS feedback (
            service_id TEXT NOT NULL,
            card TEXT NOT NULL,
            outcome TEXT NOT NULL,
            accepted_suggestions TEXT NOT NULL DEFAULT '',
            override_system TEXT,
            override_code TEXT,
            user_comment TEXT,
            outcome_timestamp TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (card, outcome, accepted_suggestions)
        )""",
    },
    {
        "sqlite": "CREATE TABLE IF NOT EXISTS seen_jti (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
        "postgresql": "CREATE TABLE IF NOT EXISTS seen_jti (jti TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
    },
    {   # the replay check deletes expired ids on every call
        "sqlite": "CREATE INDEX IF NOT EXISTS seen_jti_expires_at ON seen_jti (expires_at)",
        "postgresql": "CREATE INDEX IF NOT EXISTS seen_jti_expires_at ON seen_jti (expires_at)",
    },
]

_INSERT_FEEDBACK = (
    "INSERT INTO feedback (service_id, card, outcome, accepted_suggestions, override_system, override_code,"
    " user_comment, outcome_timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (card, outcome, accepted_suggestions) DO NOTHING"
)
_INSERT_JTI = "INSERT INTO seen_jti (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING"
_DELETE_EXPIRED_JTI = "DELETE FROM seen_jti WHERE expires_at < ?"
JTI_GRACE_S = 600  # ids are kept this long past their token's exp (clock skew)
PG_ADVISORY_LOCK_KEY = 0x72656D6973  # "remis": serialises migrations across workers and pods


class FeedbackStoreError(RuntimeError):
    """The store could not be opened or used; the message never carries the URL's password."""


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or ``password=`` query parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> list[str]:
    out = []
    try:
        parts = urlsplit(url)
        if parts.password:
            out += [parts.password, unquote(parts.password)]
        out += [unquote(v) for v in re.findall(r"(?i)(?:^|&)password=([^&]*)", parts.query)]
        out += [v for v in re.findall(r"(?i)(?:^|&)password=([^&]*)", parts.query)]
    except ValueError:
        pass
    return sorted({s for s in out if s}, key=len, reverse=True)


def _row(service_id: str, fb: dict[str, Any], received_at: str) -> tuple:
    accepted = ",".join(sorted(s["id"] for s in fb.get("acceptedSuggestions") or ()))
    override = fb.get("overrideReason") or {}
    reason = override.get("reason") or {}
    return (service_id, fb["card"], fb["outcome"], accepted, reason.get("system"), reason.get("code"),
            override.get("userComment"), fb["outcomeTimestamp"], received_at)


def _row_key(row: tuple) -> tuple:
    return row[1], row[2], row[3]


class FeedbackStore:
    """The store interface. ``FeedbackStore(url)`` returns the implementation for the URL's scheme."""

    dialect = ""

    def __new__(cls, url: str | None = None, *args: Any, **kwargs: Any) -> "FeedbackStore":
        if cls is FeedbackStore:
            cls = _implementation(url or "")
        return super().__new__(cls)

    def __init__(self, url: str) -> None:  # pragma: no cover - the implementations define it
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- implementation hooks ------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, *, lock: bool = False) -> Iterator[Any]:
        """A write transaction; yields an object with ``execute(sql, params) -> cursor`` (``?`` placeholders)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def _scalar(self, sql: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""

    # -- the interface ---------------------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the pending migrations (all in one locked transaction); returns the schema version."""
        with self._transaction(lock=True) as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", ())
            current = tx.execute("SELECT MAX(version) FROM schema_version", ()).fetchone()[0] or 0
            for version in range(current + 1, len(MIGRATIONS) + 1):
                tx.execute(MIGRATIONS[version - 1][self.dialect], ())
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        return max(current, len(MIGRATIONS))

    def schema_version(self) -> int:
        return self._scalar("SELECT MAX(version) FROM schema_version") or 0

    def record(self, service_id: str, items: list[dict[str, Any]], received_at: str) -> int:
        """Store every feedback item; returns how many were new (repeats are ignored)."""
        rows = sorted((_row(service_id, fb, received_at) for fb in items), key=_row_key)
        new = 0
        with self._transaction() as tx:
            for row in rows:
                new += max(tx.execute(_INSERT_FEEDBACK, row).rowcount, 0)
        return new

    def remember_jti(self, jti: str, expires_at: int) -> bool:
        """Record a JWT id; False when it was already seen and has not expired (a replay)."""
        now = int(time.time())
        with self._transaction() as tx:
            tx.execute(_DELETE_EXPIRED_JTI, (now - JTI_GRACE_S,))
            inserted = tx.execute(_INSERT_JTI, (jti, int(expires_at))).rowcount
        return inserted == 1

    def count(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM feedback"))

    def ping(self) -> bool:
        try:
            self._scalar("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - readiness: any failure means not ready
            return False


def _implementation(url: str) -> type[FeedbackStore]:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return SQLiteStore
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return PostgresStore
    raise ValueError(f"unsupported feedback database URL scheme '{scheme}' "
                     "(use sqlite:///path or postgresql://user:password@host:port/db)")


def open_store(url: str) -> FeedbackStore:
    """The feedback store for a URL (``sqlite:///…`` or ``postgresql://…``), migrated."""
    return FeedbackStore(url)


class _PerProcessConnections:
    """One connection per (process, thread). A connection inherited through fork is kept referenced, never used
    and never closed by the child (closing it would end the parent's session or corrupt SQLite's locks)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._inherited: list[Any] = []

    def get(self) -> Any | None:
        pid, conn = getattr(self._local, "entry", (None, None))
        if conn is not None and pid != os.getpid():
            self._inherited.append(conn)
            self._local.entry = (None, None)
            return None
        return conn

    def set(self, conn: Any) -> None:
        self._local.entry = (os.getpid(), conn)

    def drop(self) -> Any | None:
        conn = self.get()
        self._local.entry = (None, None)
        return conn


_NO_LOCK = nullcontext()


def _set_wal(conn: sqlite3.Connection, wait_s: float = 10.0) -> None:
    """WAL mode. Switching needs an exclusive lock and SQLite answers "database is locked" at once, without its
    busy handler, while another process is opening the same new file: retry for a bounded time."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


class SQLiteStore(FeedbackStore):
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise ValueError(f"not a sqlite URL: '{parts.scheme}'")
        self.url = url
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parts.path
        self.path = path
        self.memory = path in (":memory:", "")
        if not self.memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conns = _PerProcessConnections()
        self._memory_conn: sqlite3.Connection | None = None
        self._memory_lock = threading.RLock()  # the shared in-memory connection: one transaction at a time
        self.migrate()
        if not self.memory:
            self.close()  # workers forked after start-up open their own

    def _conn(self) -> sqlite3.Connection:
        if self.memory:  # one shared in-memory database (a connection per thread would see an empty one each)
            if self._memory_conn is None:
                self._memory_conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            return self._memory_conn
        conn = self._conns.get()
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            _set_wal(conn)
            self._conns.set(conn)
        return conn

    @contextmanager
    def _transaction(self, *, lock: bool = False) -> Iterator[_SQLiteTx]:
        with self._memory_lock if self.memory else _NO_LOCK:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock now: concurrent migrators and writers queue
            try:
                yield _SQLiteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _scalar(self, sql: str) -> Any:
        with self._memory_lock if self.memory else _NO_LOCK:
            return self._conn().execute(sql).fetchone()[0]

    def close(self) -> None:
        conn = self._conns.drop()
        if conn is not None:
            conn.close()


class _PgTx:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def execute(self, sql: str, params: tuple) -> Any:
        self.cur.execute(sql.replace("?", "%s"), params)
        return self.cur


class PostgresStore(FeedbackStore):
    dialect = "postgresql"
    connect_timeout_s = 5
    statement_timeout_ms = 10_000
    attempts = 3  # per write: a dropped connection or a deadlock victim is retried (writes are idempotent)

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise FeedbackStoreError("PostgreSQL feedback store needs psycopg 3 (pip install 'psycopg[binary]')") \
                from exc
        self._psycopg = psycopg
        self._url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._secrets = _secrets_of(self._url)
        self.url = redact_url(self._url)
        self._conns = _PerProcessConnections()
        self._with_retries(lambda: self.migrate())
        self.close()  # workers forked after start-up open their own

    def _safe(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._url)
        except psycopg.Error as exc:
            raise FeedbackStoreError(f"invalid feedback database URL {self.url}: {self._safe(str(exc))}") from None
        extra: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in info:
            extra["connect_timeout"] = self.connect_timeout_s
        if "application_name" not in info:
            extra["application_name"] = "remission-cds"
        if "options" not in info:
            extra["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        try:
            return psycopg.connect(self._url, **extra)
        except psycopg.Error as exc:
            raise FeedbackStoreError(f"cannot connect to the feedback database {self.url}: "
                                     f"{self._safe(str(exc)).strip()}") from None

    def _conn(self) -> Any:
        conn = self._conns.get()
        if conn is not None and conn.closed:
            self._conns.drop()
            conn = None
        if conn is None:
            conn = self._connect()
            self._conns.set(conn)
        return conn

    def _with_retries(self, fn: Any) -> Any:
        psycopg = self._psycopg
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except psycopg.OperationalError as exc:  # connection lost, deadlock victim, serialization failure
                broken = self._conns.get()
                if broken is not None and (broken.closed or broken.broken):
                    self._conns.drop()
                if attempt == self.attempts:
                    raise FeedbackStoreError(f"feedback database error ({type(exc).__name__}): "
                                             f"{self._safe(str(exc)).strip()}") from None
                time.sleep(0.05 * attempt)
            except FeedbackStoreError:
                if attempt == self.attempts:
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, *, lock: bool = False) -> Iterator[_PgTx]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            if lock:
                cur.execute("SET LOCAL statement_timeout = '60s'")  # waiting for another worker's migrations
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_ADVISORY_LOCK_KEY,))
            yield _PgTx(cur)

    def record(self, service_id: str, items: list[dict[str, Any]], received_at: str) -> int:
        return self._with_retries(lambda: FeedbackStore.record(self, service_id, items, received_at))

    def remember_jti(self, jti: str, expires_at: int) -> bool:
        return self._with_retries(lambda: FeedbackStore.remember_jti(self, jti, expires_at))

    def _scalar(self, sql: str) -> Any:
        def run() -> Any:
            with self._conn().cursor() as cur:
                cur.execute(sql)
                return cur.fetchone()[0]

        return self._with_retries(run)

    def ping(self) -> bool:
        try:
            with self._conn().cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
            return True
        except Exception:  # noqa: BLE001 - readiness: any failure means not ready; next call reconnects
            conn = self._conns.get()
            if conn is not None and (conn.closed or conn.broken):
                self._conns.drop()
            return False

    def close(self) -> None:
        conn = self._conns.drop()
        if conn is not None:
            conn.close()
