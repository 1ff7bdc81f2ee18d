"""The feedback store, the same tests against SQLite and a real PostgreSQL server (started by the test session).

Idempotency, persistence across re-open, JWT-id replay, migrations (idempotent, from an older schema, a newer
database left as it is, several processes migrating at once), fork safety, the password never shown, and
concurrent writers: 8 processes x 50 posts with duplicates against gunicorn with 3 workers -> every unique item
stored once, none lost, none counted twice.
"""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
import uuid

import pytest
import requests

from cds_service import feedback as fbmod
from cds_service.feedback import FeedbackStore, FeedbackStoreError, PostgresStore, SQLiteStore, open_store
from gunicorn_proc import Gunicorn
from pg_server import PASSWORD

FORK = multiprocessing.get_context("fork")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fb.sqlite3"
    server = request.getfixturevalue("postgres_server")
    return server.fresh_database(f"t_{uuid.uuid4().hex[:12]}")


def item(card: str, outcome: str = "overridden", suggestions: tuple[str, ...] = (), comment: str | None = None):
    out = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-22T10:05:31Z"}
    if suggestions:
        out["acceptedSuggestions"] = [{"id": s} for s in suggestions]
    if outcome == "overridden":
        out["overrideReason"] = {"reason": {"code": "not-relevant", "system": "http://example.org"}}
        if comment:
            out["overrideReason"]["userComment"] = comment
    return out


def stored_keys(url: str) -> list[tuple[str, str, str]]:
    """Every stored (card, outcome, accepted) key, read with the database's own client."""
    sql = "SELECT card, outcome, accepted_suggestions FROM feedback"
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            return [tuple(r) for r in conn.execute(sql)]
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def versions(url: str) -> list[int]:
    sql = "SELECT version FROM schema_version ORDER BY version"
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            return [r[0] for r in conn.execute(sql)]
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(sql)]


def test_url_scheme_selects_the_implementation(store_url):
    store = open_store(store_url)
    assert isinstance(store, FeedbackStore)
    assert isinstance(store, SQLiteStore if store_url.startswith("sqlite") else PostgresStore)
    assert type(FeedbackStore(store_url)) is type(store)  # the old name keeps working for existing callers
    with pytest.raises(ValueError, match="unsupported feedback database URL scheme 'mysql'"):
        open_store("mysql://u:p@h/db")


def test_record_is_idempotent_per_card_outcome_and_suggestions(store_url):
    store = open_store(store_url)
    assert store.record("remission-status", [item("c1")], "t") == 1
    assert store.record("remission-status", [item("c1", comment="again")], "t") == 0  # same key
    assert store.record("remission-status", [item("c1", "accepted", ("s1",))], "t") == 1
    assert store.record("remission-status", [item("c1", "accepted", ("s2", "s1"))], "t") == 1
    assert store.record("remission-status", [item("c1", "accepted", ("s1", "s2"))], "t") == 0  # order-insensitive
    batch = [item("c2"), item("c2"), item("c3"), item("c1")]  # duplicates inside one batch count once
    assert store.record("surveillance-order-check", batch, "t") == 2
    assert store.count() == 5


def test_feedback_persists_across_reopen(store_url):
    store = open_store(store_url)
    store.record("remission-status", [item(f"c{i}") for i in range(10)], "t")
    store.close()
    again = open_store(store_url)
    assert again.count() == 10
    assert again.record("remission-status", [item("c3")], "t") == 0
    assert again.schema_version() == len(fbmod.MIGRATIONS)


def test_jti_replay_is_refused_and_expired_ids_are_forgotten(store_url):
    store = open_store(store_url)
    exp = int(time.time()) + 300
    assert store.remember_jti("iss|a", exp) is True
    assert store.remember_jti("iss|a", exp) is False
    assert open_store(store_url).remember_jti("iss|a", exp) is False  # shared by every worker and replica
    assert store.remember_jti("iss|b", exp) is True
    long_ago = int(time.time()) - fbmod.JTI_GRACE_S - 3600
    assert store.remember_jti("iss|old", long_ago) is True
    assert store.remember_jti("iss|old", long_ago) is True  # expired past the grace period: deleted first


def test_migrations_are_idempotent(store_url):
    for _ in range(3):
        store = open_store(store_url)
        store.close()
    assert versions(store_url) == list(range(1, len(fbmod.MIGRATIONS) + 1))
    assert open_store(store_url).migrate() == len(fbmod.MIGRATIONS)


def test_upgrade_from_an_older_schema_keeps_the_data(store_url, monkeypatch):
    monkeypatch.setattr(fbmod, "MIGRATIONS", fbmod.MIGRATIONS[:2])
    old = open_store(store_url)
    assert old.schema_version() == 2
    old.record("remission-status", [item("kept")], "t")
    old.close()
    monkeypatch.undo()
    new = open_store(store_url)
    assert new.schema_version() == len(fbmod.MIGRATIONS) == 3
    assert new.count() == 1 and new.record("remission-status", [item("kept")], "t") == 0


def test_a_database_migrated_by_a_newer_release_is_used_as_it_is(store_url):
    store = open_store(store_url)
    with store._transaction() as tx:
        tx.execute("INSERT INTO schema_version (version) VALUES (?)", (len(fbmod.MIGRATIONS) + 5,))
    older = open_store(store_url)  # an old pod during a rolling update: no error, nothing re-applied
    assert older.record("remission-status", [item("x")], "t") == 1
    assert versions(store_url)[-1] == len(fbmod.MIGRATIONS) + 5


def _open_at_once(url: str, barrier, out) -> None:
    try:
        barrier.wait(timeout=30)
        store = open_store(url)
        out.put(("ok", store.schema_version()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_several_processes_migrating_at_once_apply_each_migration_once(store_url):
    n = 6
    barrier, out = FORK.Barrier(n), FORK.Queue()
    procs = [FORK.Process(target=_open_at_once, args=(store_url, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(timeout=30)
    assert results == [("ok", len(fbmod.MIGRATIONS))] * n
    assert versions(store_url) == list(range(1, len(fbmod.MIGRATIONS) + 1))


def _record_in_child(store, out) -> None:
    try:
        out.put(store.record("remission-status", [item("from-child")], "t"))
    except Exception as exc:  # noqa: BLE001
        out.put(f"{type(exc).__name__}: {exc}")


def test_a_forked_worker_opens_its_own_connection(store_url):
    store = open_store(store_url)
    assert store.count() == 0  # the parent now holds an open connection
    out = FORK.Queue()
    child = FORK.Process(target=_record_in_child, args=(store, out))
    child.start()
    assert out.get(timeout=30) == 1
    child.join(timeout=30)
    assert store.record("remission-status", [item("from-parent")], "t") == 1  # the parent's session still works
    assert store.count() == 2


def test_the_password_never_shows(postgres_server, capsys):
    from structlog.testing import capture_logs

    url = postgres_server.url
    store = open_store(url)
    assert PASSWORD not in repr(store) and PASSWORD not in store.url and "***" in store.url
    wrong = url.replace(PASSWORD, PASSWORD + "-wrong")
    with pytest.raises(FeedbackStoreError) as err:
        open_store(wrong)
    assert PASSWORD not in str(err.value) and "password" in str(err.value).lower()
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(FeedbackStoreError) as err:
        open_store(url.replace("/remission_test", "/remission_test?sslmode=bogus%zz"))
    assert PASSWORD not in str(err.value)
    assert fbmod.redact_url("postgresql://u:p%40ss@h/db?password=x&a=1") == "postgresql://u:***@h/db?password=***&a=1"

    from cds_service import create_app

    with capture_logs() as events:
        app = create_app({"feedback_database_url": url})
        c = app.test_client()
        assert c.get("/readyz").get_json() == {"status": "ready", "feedbackStore": True}
        r = c.post("/cds-services/remission-status/feedback", json={"feedback": [item("via-app")]})
        assert r.get_json() == {"received": 1, "new": 1}
        r = c.post("/cds-services/remission-status/feedback", json={"feedback": [item("via-app")]})
        assert r.get_json() == {"received": 1, "new": 0}
    captured = capsys.readouterr()
    assert PASSWORD not in json.dumps(events) + captured.out + captured.err


def test_a_killed_postgresql_session_is_reopened(postgres_server):
    from cds_service import create_app
    import psycopg

    url = postgres_server.fresh_database("t_killed")

    def kill_sessions() -> None:
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 't_killed'"
                          " AND pid <> pg_backend_pid()")

    app = create_app({"feedback_database_url": url})
    c = app.test_client()
    assert c.get("/readyz").status_code == 200
    kill_sessions()
    assert c.get("/readyz").status_code in (200, 503)  # the dead connection is noticed and dropped ...
    assert c.get("/readyz").status_code == 200          # ... and the next check reconnects
    kill_sessions()
    r = c.post("/cds-services/remission-status/feedback", json={"feedback": [item("after-kill")]})
    assert r.status_code == 200 and r.get_json()["new"] == 1  # the write is retried on a new connection
    assert app.extensions["remission_feedback"].count() == 1


# --- concurrent writers through real gunicorn workers ----------------------------------------------------------
PROCESSES, POSTS = 8, 50


def _post_plan(proc: int) -> list[dict]:
    """The bodies one client process posts: 2 items each; keys overlap across processes (duplicates)."""
    bodies = []
    for j in range(POSTS):
        k = proc * POSTS + j
        bodies.append({"feedback": [item(f"card-{k % 300}"),
                                    item(f"card-{(k * 7) % 250}", "accepted", (f"s-{k % 3}",))]})
    return bodies


def _client(args) -> tuple[int, int, list[int]]:
    base, proc = args
    new, ok, statuses = 0, 0, []
    with requests.Session() as s:
        for body in _post_plan(proc):
            r = s.post(base + "/cds-services/remission-status/feedback", json=body, timeout=30)
            statuses.append(r.status_code)
            if r.status_code == 200:
                ok += 1
                new += r.json()["new"]
    return ok, new, statuses


def test_concurrent_posts_through_gunicorn_lose_nothing_and_duplicate_nothing(store_url, tmp_path):
    expected = set()
    for p in range(PROCESSES):
        for body in _post_plan(p):
            for fb in body["feedback"]:
                expected.add((fb["card"], fb["outcome"],
                              ",".join(sorted(s["id"] for s in fb.get("acceptedSuggestions") or ()))))
    env = {"REMISSION_CDS_FEEDBACK_DATABASE_URL": store_url}
    with Gunicorn(tmp_path, workers=3, env=env) as base:
        with FORK.Pool(PROCESSES) as pool:
            results = pool.map_async(_client, [(base, p) for p in range(PROCESSES)]).get(timeout=240)
    statuses = [s for _, _, ss in results for s in ss]
    assert statuses == [200] * PROCESSES * POSTS
    assert sum(new for _, new, _ in results) == len(expected)  # each unique item counted new exactly once
    keys = stored_keys(store_url)
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected  # zero lost, zero duplicated
    assert len(expected) < PROCESSES * POSTS * 2  # the plan does contain duplicates
    if PASSWORD in store_url:
        assert PASSWORD not in (tmp_path / "gunicorn.log").read_text(errors="replace")
