"""``remission-cds sandbox up | seed | patients``: the local sandbox, seeding any FHIR server, the patient library."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

TOKEN_ENV = "REMISSION_CDS_SANDBOX_TOKEN"
PUBLIC_SANDBOX = "https://sandbox.cds-hooks.org/"


def _as_of(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"--as-of must be a date (YYYY-MM-DD), not {text!r}") from None


def add_sandbox_parser(sub: Any) -> None:
    """Register ``sandbox`` and its subcommands on the main parser's subparsers."""
    sb = sub.add_parser("sandbox", help="synthetic patients, a local FHIR server, and seeding any FHIR server")
    ssub = sb.add_subparsers(dest="sandbox_command", required=True)

    up = ssub.add_parser("up", help="start a local FHIR server, load the patients, start the service; Ctrl-C stops")
    up.add_argument("--port", type=int, default=8080, help="service port on 127.0.0.1 (default 8080)")
    up.add_argument("--fhir-port", type=int, default=0, help="FHIR server port on 127.0.0.1 (default: a free one)")
    up.add_argument("--data-dir", default="var/sandbox", help="FHIR database and service files (default var/sandbox)")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--as-of", help="date the library is written for (default: today, UTC)")
    up.add_argument("--duration", type=float, help="stop by itself after this many seconds (default: until Ctrl-C)")
    up.set_defaults(func=cmd_up)

    sd = ssub.add_parser("seed", help="load the patients into any FHIR R4 server (PUT with stable ids, idempotent)")
    sd.add_argument("--fhir-base", required=True, help="FHIR base URL, e.g. https://hapi.fhir.org/baseR4")
    sd.add_argument("--token", help=f"bearer token for the FHIR server (or set ${TOKEN_ENV})")
    sd.add_argument("--as-of", help="date the library is written for (default: today, UTC)")
    sd.add_argument("--patient", action="append", help="only this patient id (repeatable)")
    sd.set_defaults(func=cmd_seed)

    ls = ssub.add_parser("patients", help="list the synthetic patients and the cards each must get")
    ls.add_argument("--json", action="store_true", help="machine-readable list")
    ls.set_defaults(func=cmd_patients)


# --- patients -------------------------------------------------------------------------------------------------

def cmd_patients(args: argparse.Namespace) -> int:
    from cds_service.sandbox.patients import library

    lib = library()
    if args.json:
        print(json.dumps([{"id": p.id, "title": p.title, "shows": p.shows, "needsConfig": p.needs_config,
                           "expected": [{"criteria": e.criteria, "category": e.category} for e in p.expected],
                           "surveillance": p.surveillance or None} for p in lib], indent=2, ensure_ascii=False))
        return 0
    width = max(len(p.id) for p in lib)
    for p in lib:
        extra = "  [needs the library configuration]" if p.needs_config else ""
        print(f"{p.id:<{width}}  {p.expected_text()}{extra}")
        print(f"{'':<{width}}  {p.title}: {p.shows}")
    print(f"{len(lib)} patients")
    return 0


# --- seed -----------------------------------------------------------------------------------------------------

def _selected(args: argparse.Namespace):
    from cds_service.sandbox.patients import library

    lib = library(_as_of(args.as_of))
    if args.patient:
        known = {p.id for p in lib}
        unknown = [i for i in args.patient if i not in known]
        if unknown:
            raise SystemExit(f"unknown patient id(s): {', '.join(unknown)} (see: remission-cds sandbox patients)")
        lib = [p for p in lib if p.id in args.patient]
    return lib


def cmd_seed(args: argparse.Namespace) -> int:
    from cds_service.sandbox.seed import SeedError, seed

    lib = _selected(args)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    print(f"seeding {len(lib)} patients into {args.fhir_base}", flush=True)
    try:
        report = seed(args.fhir_base, lib, token=token, progress=lambda m: print(m, flush=True))
    except SeedError as exc:
        print(f"remission-cds: error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {report.patients} patients, {report.resources} resources "
          f"({report.written} written, {report.unchanged} unchanged)")
    return 0


# --- up -------------------------------------------------------------------------------------------------------

def hook_curl(patient_id: str, fhir_base: str, service_base: str, hook_instance: str) -> str:
    """A ready-to-paste patient-view call without prefetch: the service fetches from the FHIR server."""
    body = {"hook": "patient-view", "hookInstance": hook_instance, "fhirServer": fhir_base,
            "context": {"userId": "Practitioner/example", "patientId": patient_id}}
    return (f"curl -s -X POST -H 'Content-Type: application/json' -d '{json.dumps(body, separators=(',', ':'))}' "
            f"{service_base}/cds-services/remission-status")


def sandbox_link(fhir_base: str, discovery: str, patient_id: str) -> str:
    return (f"{PUBLIC_SANDBOX}?fhirServiceUrl={quote(fhir_base, safe='')}&patientId={quote(patient_id)}"
            f"&serviceDiscoveryURL={quote(discovery, safe='')}")


def service_config(user_config: str | None, data_dir: Path) -> Path:
    """The user's configuration (if any) with the library's local-code mappings merged in, written to data_dir."""
    import yaml

    from cds_service.config import ENV_PREFIX, _merge, read_file
    from cds_service.sandbox.patients import LIBRARY_CONFIG

    source = user_config or os.environ.get(ENV_PREFIX + "CONFIG")
    base: dict[str, Any] = read_file(source) if source else {}
    base.setdefault("feedback_database_url", f"sqlite:///{(data_dir / 'feedback.sqlite3').resolve()}")
    merged = _merge(base, LIBRARY_CONFIG)
    for family, inputs in LIBRARY_CONFIG["mappings"].items():   # keep the user's own codes for the same inputs
        for name, codes in inputs.items():
            mine = ((base.get("mappings") or {}).get(family) or {}).get(name) or []
            merged["mappings"][family][name] = [*mine, *[c for c in codes if c not in mine]]
    path = data_dir / "service-config.yaml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return path


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    import requests

    deadline = time.monotonic() + timeout_s
    session = requests.Session()
    session.trust_env = False
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if session.get(url, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
    finally:
        session.close()
    return False


def _stop(proc: subprocess.Popen | None, timeout_s: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def cmd_up(args: argparse.Namespace) -> int:
    import uuid

    from cds_service.sandbox.fhir_server import FhirServerError, LocalFhirServer
    from cds_service.sandbox.patients import library
    from cds_service.sandbox.seed import SeedError, seed

    def _interrupt(signum, frame):  # noqa: ANN001 - SIGTERM (and an inherited-ignored SIGINT) stop cleanly too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lib = library(_as_of(args.as_of))
    server = LocalFhirServer(data_dir / "fhir", port=args.fhir_port)
    service: subprocess.Popen | None = None
    service_base = f"http://127.0.0.1:{args.port}"
    try:
        print("sandbox: starting the local FHIR server (sekmet-fhir; the first run installs it into .venv-fhir)",
              flush=True)
        try:
            server.start()
        except FhirServerError as exc:
            print(f"remission-cds: error: {exc}", file=sys.stderr)
            return 1
        print(f"sandbox: FHIR server {server.base_url} (SQLite in {server.data_dir})", flush=True)
        try:
            report = seed(server.base_url, lib, progress=lambda m: print(f"sandbox: {m}", flush=True))
        except SeedError as exc:
            print(f"remission-cds: error: {exc}", file=sys.stderr)
            return 1
        print(f"sandbox: {report.patients} patients loaded ({report.written} resources written, "
              f"{report.unchanged} unchanged)", flush=True)
        config = service_config(getattr(args, "config", None), data_dir)
        env = {k: v for k, v in os.environ.items() if k != "REMISSION_CDS_CONFIG"}
        service = subprocess.Popen(
            [sys.executable, "-m", "cds_service.cli", "--config", str(config), "serve", "--host", "127.0.0.1",
             "--port", str(args.port), "--workers", str(args.workers)],
            env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        if not _wait_http(f"{service_base}/readyz", service, 60):
            print(f"remission-cds: error: the service did not start on {service_base} (port in use? try --port)",
                  file=sys.stderr)
            return 1
        discovery = f"{service_base}/cds-services"
        print("", flush=True)
        print(f"sandbox: ready.\n  FHIR server       {server.base_url}\n  CDS discovery     {discovery}\n"
              f"  service config    {config}\n", flush=True)
        print("Hook calls, one per patient (the service fetches the record from the FHIR server):\n")
        for p in lib:
            print(f"# {p.id}: {p.title} -> expected {p.expected_text()}")
            print(hook_curl(p.id, server.base_url, service_base,
                            str(uuid.uuid5(uuid.NAMESPACE_URL, f"remission-cds/sandbox/{p.id}"))))
        print(f"\nIn the public CDS Hooks Sandbox (a browser on this machine reaches 127.0.0.1; see README 'Try it'):\n"
              f"  {sandbox_link(server.base_url, discovery, lib[0].id)}\n", flush=True)
        print("sandbox: running; Ctrl-C stops the service and the FHIR server.", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            if service.poll() is not None or not server.running:
                print("remission-cds: error: the service or the FHIR server stopped", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        print("\nsandbox: stopping", flush=True)
        return 0
    finally:
        _stop(service)
        server.stop()
        print("sandbox: stopped", flush=True)
