"""Service configuration: one validated file (YAML), overridable from the environment for deployment secrets.

With no file the defaults apply: sandbox-friendly (open CDS-client authentication, plain-http FHIR servers on
loopback) and the service logs loudly at start-up that security is relaxed. Criteria thresholds are not
configurable: they are the papers'.

Environment overrides: ``REMISSION_CDS_<KEY>`` for a top-level key and ``REMISSION_CDS_<SECTION>__<KEY>`` for a
nested one (e.g. ``REMISSION_CDS_FEEDBACK_DATABASE_URL``, ``REMISSION_CDS_FHIR__READ_TIMEOUT_S``); values are
parsed as YAML scalars or lists (``true``, ``3``, ``[a, b]``). ``REMISSION_CDS_CONFIG`` names the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FhirSettings(_Model):
    connect_timeout_s: float = Field(1.0, gt=0, le=30, description="TCP connect timeout per FHIR request")
    read_timeout_s: float = Field(2.0, gt=0, le=60, description="read timeout per FHIR request")
    max_pages: int = Field(20, ge=1, le=1000, description="Bundle pages followed per query")
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"],
                                     description="fhirServer hosts the access token may be sent to")
    allow_http: bool = Field(True, description="allow plain-http fhirServer (local testing only)")
    allow_unauthenticated: bool = Field(True, description="query fhirServer with no token (CDS Hooks Sandbox)")


class ServiceToggle(_Model):
    enabled: bool = True
    title: str | None = None


class CardSettings(_Model):
    show_insufficient_data: bool = Field(True, description="short card naming what is missing, instead of silence")
    show_surveillance: bool = Field(True, description="surveillance card for patients in complete remission")
    show_disease_status_suggestion: bool = Field(True, description="offer an mCODE CancerDiseaseStatus to record")
    links: list[dict[str, str]] = Field(default_factory=list, description="extra absolute links on assessment cards")
    smart_link: bool = Field(True, description="link assessment cards to the response timeline SMART app")

    @field_validator("links")
    @classmethod
    def _links(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        for link in v:
            if not link.get("label") or not str(link.get("url", "")).startswith(("https://", "http://")):
                raise ValueError("each link needs a label and an absolute http(s) url")
        return v


class SmartAppSettings(_Model):
    enabled: bool = Field(True, description="serve the response timeline SMART app under /smart/")
    client_id: str = Field("remission-cds-timeline", min_length=1, description="the app's client_id at the EHR")
    scope: str = Field("launch openid fhirUser patient/Patient.rs patient/Condition.rs patient/Observation.rs "
                       "patient/DiagnosticReport.rs patient/BodyStructure.rs patient/MedicationRequest.rs "
                       "patient/Procedure.rs", min_length=1,
                       description="scopes asked at EHR launch (standalone launch asks launch/patient instead)")


class LocalCode(_Model):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    unit: str | None = Field(None, description="UCUM unit the lab sends when its results carry none")

    def key(self) -> str:
        return f"{self.system}|{self.code}"


class TrustedIssuer(_Model):
    iss: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_file: str | None = None
    jku_allowlist: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source(self) -> "TrustedIssuer":
        if not (self.jwks_url or self.jwks or self.jwks_file):
            raise ValueError("a trusted issuer needs jwks_url, jwks or jwks_file")
        return self


class AuthSettings(_Model):
    mode: Literal["open", "jwt"] = Field("open", description="open = no CDS-client JWT check (sandboxes only)")
    audience: str | None = Field(None, description="expected aud base, e.g. https://cds.example.org/cds-services")
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    leeway_s: int = Field(5, ge=5, le=300)
    jwks_cache_s: int = Field(300, ge=10, le=86400)

    @model_validator(mode="after")
    def _jwt_needs_issuers(self) -> "AuthSettings":
        if self.mode == "jwt" and not self.trusted_issuers:
            raise ValueError("mode jwt needs at least one trusted issuer")
        return self


class Settings(_Model):
    environment: Literal["sandbox", "production"] = "sandbox"
    public_url: str | None = Field(None, description="the service's public base URL (JWT audience, links)")
    feedback_database_url: str = "sqlite:///var/feedback.sqlite3"
    lookback_days: int = Field(1095, ge=30, le=36500, description="prefetch and FHIR query look-back window")
    hook_deadline_s: float = Field(2.0, gt=0, le=30, description="overall deadline for FHIR fetches per hook call")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    recist_confirmation_required: bool = False
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    cards: CardSettings = Field(default_factory=CardSettings)
    smart: SmartAppSettings = Field(default_factory=SmartAppSettings)
    services: dict[str, ServiceToggle] = Field(default_factory=dict)
    mappings: dict[str, dict[str, list[LocalCode]]] = Field(
        default_factory=dict, description="local codes: mappings.<family>.<input> = [{system, code, unit}]")
    surveillance: dict[str, Any] | None = Field(None, description="overrides merged over the default schedules")
    surveillance_done_codes: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="extra codes that count as done: <schedule>.<item> = [system|code]")
    checkpoint_inhibitors: list[str] | None = Field(None, description="drug names/codes that switch RECIST to iRECIST")
    criteria_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="options the criteria mappers read, by name (e.g. aieop_bfm_protocol: "
        "'2000', all_mrd_protocol: COG, iwcll_require_marrow_for_cr: false); see docs/fhir-inputs-*.md")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("services")
    @classmethod
    def _known_services(cls, v: dict[str, ServiceToggle]) -> dict[str, ServiceToggle]:
        from cds_service.services import SERVICES

        known = {s.id for s in SERVICES}
        for key in v:
            if key not in known:
                raise ValueError(f"unknown service '{key}'{_did_you_mean(key, known)}")
        return v

    @model_validator(mode="after")
    def _production_is_strict(self) -> "Settings":
        if self.environment == "production":
            problems = []
            if self.auth.mode == "open":
                problems.append("auth.mode must be jwt in production")
            if self.fhir.allow_http:
                problems.append("fhir.allow_http must be false in production")
            if self.fhir.allow_unauthenticated:
                problems.append("fhir.allow_unauthenticated must be false in production")
            if "*" in self.cors_origins:
                problems.append("cors_origins must list origins in production (not '*')")
            if problems:
                raise ValueError("; ".join(problems))
        return self

    def relaxed_security(self) -> list[str]:
        notes = []
        if self.auth.mode == "open":
            notes.append("CDS clients are not authenticated (auth.mode: open)")
        if self.fhir.allow_http:
            notes.append("plain-http FHIR servers are allowed")
        if self.fhir.allow_unauthenticated:
            notes.append("unauthenticated FHIR queries are allowed")
        return notes

    def local_codes(self) -> dict[str, list[tuple[str, str | None]]]:
        """input name -> [(system|code, unit)] flattened over families (the mappers' options["local_codes"])."""
        out: dict[str, list[tuple[str, str | None]]] = {}
        for family in self.mappings.values():
            for input_name, codes in family.items():
                out.setdefault(input_name, []).extend((c.key(), c.unit) for c in codes)
        return out

    def mapping_options(self) -> dict[str, Any]:
        """Options the mappers read (fhir_mappings never sees the Settings object)."""
        opts: dict[str, Any] = {**self.criteria_options,
                                "recist_confirmation_required": self.recist_confirmation_required or None,
                                "local_codes": self.local_codes()}
        if self.checkpoint_inhibitors:
            opts["checkpoint_inhibitors"] = list(self.checkpoint_inhibitors)
        return opts

    def surveillance_schedules(self) -> dict[str, Any] | None:
        """Default schedules with configured overrides merged in (None: use the defaults as they are)."""
        if not self.surveillance:
            return None
        from rules.surveillance import load_default_schedules

        return _merge(load_default_schedules(), self.surveillance)


def _did_you_mean(word: str, options) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


ENV_PREFIX = "REMISSION_CDS_"


# An environment value YAML reads as that very string (a URL, a path, a word), so the YAML parser (~1 MiB per worker)
# is not loaded for it: it starts with a letter, "/" or "_" that begins none of YAML's implicit types (bool and null
# start with one of yYnNtTfFoO; numbers, dates, "~", "<<" and "=" with something else), holds no space and no YAML
# indicator, and does not end with ":" (that would be a mapping). tests/test_config.py compares with yaml.safe_load.
_PLAIN_YAML_STRING = re.compile(r"[A-EG-MP-SU-XZa-eg-mp-su-xz/_][A-Za-z0-9_./:@%+=~-]*(?<!:)")


def _env_value(value: str) -> Any:
    """An environment override's value, as YAML reads it (a plain string when YAML would not read it)."""
    if not value or _PLAIN_YAML_STRING.fullmatch(value):
        return value
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _env_overrides() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in os.environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(value)
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the configuration must be a mapping at the top level")
    return loaded


def load_settings(source: str | Path | dict | Settings | None = None) -> Settings:
    """Settings from a mapping, a YAML file path, $REMISSION_CDS_CONFIG, or defaults; env vars win."""
    if isinstance(source, Settings):
        return source
    data: dict[str, Any] = {}
    if source is None:
        source = os.environ.get(ENV_PREFIX + "CONFIG") or None
    if isinstance(source, (str, Path)):
        data = read_file(source)
    elif isinstance(source, dict):
        data = source
    return Settings.model_validate(_merge(data, _env_overrides()))
