"""Service configuration: one validated model, loaded from YAML and overridable from the environment.

With no file the defaults below apply: sandbox-friendly (open authentication, http FHIR servers on loopback),
and the service logs loudly at start-up that security is relaxed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FhirSettings(_Model):
    connect_timeout_s: float = Field(1.0, gt=0, le=30)
    read_timeout_s: float = Field(2.0, gt=0, le=60)
    max_pages: int = Field(20, ge=1, le=1000)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"])
    allow_http: bool = True            # plain http only for local testing; production sets false
    allow_unauthenticated: bool = True  # query fhirServer with no token (CDS Hooks Sandbox behaviour)


class ServiceToggle(_Model):
    enabled: bool = True
    title: str | None = None


class CardSettings(_Model):
    show_insufficient_data: bool = True


class Settings(_Model):
    environment: Literal["sandbox", "production"] = "sandbox"
    public_url: str | None = None
    feedback_database_url: str = "sqlite:///var/feedback.sqlite3"
    lookback_days: int = Field(1095, ge=30, le=36500)
    hook_deadline_s: float = Field(2.0, gt=0, le=30)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    recist_confirmation_required: bool = False
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    cards: CardSettings = Field(default_factory=CardSettings)
    services: dict[str, ServiceToggle] = Field(default_factory=dict)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    surveillance: dict[str, Any] | None = None  # overrides merged over rules/data/surveillance.json

    def mapping_options(self) -> dict[str, Any]:
        """Options the mappers read (fhir_mappings never sees the Settings object)."""
        return {"recist_confirmation_required": self.recist_confirmation_required or None}

    def surveillance_schedules(self) -> dict[str, Any] | None:
        """Default schedules with configured overrides merged in (None: use the defaults as they are)."""
        if not self.surveillance:
            return None
        from rules.surveillance import load_default_schedules

        data = load_default_schedules()
        return _merge(data, self.surveillance)

    def relaxed_security(self) -> list[str]:
        notes = []
        if self.fhir.allow_http:
            notes.append("plain-http FHIR servers are allowed")
        if self.fhir.allow_unauthenticated:
            notes.append("unauthenticated FHIR queries are allowed")
        return notes


ENV_PREFIX = "REMISSION_CDS_"


def _env_overrides() -> dict[str, Any]:
    """REMISSION_CDS_FEEDBACK_DATABASE_URL=... or nested REMISSION_CDS_FHIR__READ_TIMEOUT_S=3."""
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(source: str | Path | dict | Settings | None = None) -> Settings:
    """Settings from a mapping, a YAML file path, $REMISSION_CDS_CONFIG, or defaults; env vars win."""
    if isinstance(source, Settings):
        return source
    data: dict[str, Any] = {}
    if source is None:
        source = os.environ.get(ENV_PREFIX + "CONFIG") or None
    if isinstance(source, (str, Path)):
        import yaml

        loaded = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{source}: the configuration must be a mapping at the top level")
        data = loaded
    elif isinstance(source, dict):
        data = source
    return Settings.model_validate(_merge(data, _env_overrides()))
