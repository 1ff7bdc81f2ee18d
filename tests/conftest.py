from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIGNETTES = SHARED / "vignettes" / "public.json"


def load_vignettes() -> list[dict]:
    return json.loads(VIGNETTES.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def validate_suggestions(monkeypatch):
    """Every suggestion any test produces is validated against FHIR R4 (R4B models) as it is built."""
    import cds_service.remission as remission

    monkeypatch.setattr(remission, "VALIDATE_SUGGESTIONS", True)


@pytest.fixture()
def settings_dict(tmp_path):
    return {"feedback_database_url": f"sqlite:///{tmp_path}/feedback.sqlite3"}


@pytest.fixture()
def app(settings_dict):
    from cds_service import create_app

    return create_app(settings_dict)


@pytest.fixture()
def client(app):
    return app.test_client()


def assessment_cards(body: dict) -> list[dict]:
    return [c["extension"]["org.remission-cds.assessment"] for c in body["cards"]
            if "org.remission-cds.assessment" in (c.get("extension") or {})]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server started for this test session (tests/pg_server.py): the feedback-store tests run
    against it. If it cannot start, the tests that need it fail with the reason; they are never skipped."""
    from pg_server import PostgresServer, PostgresUnavailable

    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"a PostgreSQL server for the tests could not be started: {exc}", pytrace=False)
    yield server
    server.stop()
