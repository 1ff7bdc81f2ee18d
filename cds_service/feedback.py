"""Card feedback store: a real database, idempotent per (card, outcome, accepted suggestions).

SQLite by default (a file; WAL mode so several gunicorn workers can write), PostgreSQL through a
``postgresql://`` URL when several replicas share one store. The schema is versioned; migrations run at start.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS feedback (
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
    """CREATE TABLE IF NOT EXISTS seen_jti (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    )""",
]


class FeedbackStore:
    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise ValueError(f"unsupported feedback database URL scheme '{parts.scheme}' (use sqlite:///path)")
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parts.path
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for i, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(sql)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (i,))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise

    def record(self, service_id: str, items: list[dict[str, Any]], received_at: str) -> int:
        """Store every feedback item; returns how many were new (repeats are ignored)."""
        conn = self._conn()
        new = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fb in items:
                accepted = ",".join(sorted(s["id"] for s in fb.get("acceptedSuggestions") or ()))
                reason = (fb.get("overrideReason") or {}).get("reason") or {}
                cur = conn.execute(
                    "INSERT OR IGNORE INTO feedback (service_id, card, outcome, accepted_suggestions, override_system,"
                    " override_code, user_comment, outcome_timestamp, received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (service_id, fb["card"], fb["outcome"], accepted, reason.get("system"), reason.get("code"),
                     (fb.get("overrideReason") or {}).get("userComment"), fb["outcomeTimestamp"], received_at),
                )
                new += cur.rowcount
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return new

    def remember_jti(self, jti: str, expires_at: int) -> bool:
        """Record a JWT id; False when it was already seen and has not expired (a replay)."""
        import time as _time

        conn = self._conn()
        now = int(_time.time())
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM seen_jti WHERE expires_at < ?", (now - 600,))
            cur = conn.execute("INSERT OR IGNORE INTO seen_jti (jti, expires_at) VALUES (?, ?)", (jti, expires_at))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return cur.rowcount == 1

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM feedback").fetchone()[0]

    def ping(self) -> bool:
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False
