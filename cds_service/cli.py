"""The ``remission-cds`` command: serve, evaluate, vignettes, check-config, show-config, sandbox."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


def _read_json(path: str) -> Any:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(_fail(f"cannot read {path}: {exc.strerror}"))
    from cds_service.jsonio import JSONDecodeError, loads

    try:
        return loads(raw)
    except JSONDecodeError as exc:
        raise SystemExit(_fail(f"{path} is not valid JSON: {exc.msg} (position {exc.pos})"))


def _fail(msg: str) -> int:
    print(f"remission-cds: error: {msg}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_service import create_app

    app = create_app(args.config)

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 30)
            self.cfg.set("accesslog", None)

        def load(self):  # noqa: ANN201
            return app

    print(f"remission-cds: serving CDS Hooks on http://{args.host}:{args.port}/cds-services", file=sys.stderr)
    _App().run()
    return 0


def _request_from(doc: Any) -> dict:
    """A CDS Hooks request from a request document, a Bundle, or a single resource."""
    if not isinstance(doc, dict):
        raise ValueError("the file must hold a JSON object (a FHIR Bundle or a CDS Hooks request)")
    if "hook" in doc and "context" in doc:
        return doc
    if doc.get("resourceType") == "Bundle":
        resources = [e.get("resource") for e in doc.get("entry") or () if isinstance(e, dict)]
        resources = [r for r in resources if isinstance(r, dict)]
        patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
        pid = (patient or {}).get("id") or "unknown"
        from cds_service.prefetch import KEY_FOR_TYPE

        prefetch: dict = {"patient": patient}
        for rtype, key in KEY_FOR_TYPE.items():
            if key != "patient":
                prefetch[key] = {"resourceType": "Bundle", "type": "searchset",
                                 "entry": [{"resource": r} for r in resources if r.get("resourceType") == rtype]}
        return {"hook": "patient-view", "hookInstance": "cli-evaluate",
                "context": {"userId": "Practitioner/cli", "patientId": pid}, "prefetch": prefetch}
    raise ValueError("the file is neither a FHIR Bundle nor a CDS Hooks request (no 'hook'/'context', "
                     f"resourceType {doc.get('resourceType')!r})")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cds_service import create_app

    doc = _read_json(args.file)
    try:
        req = _request_from(doc)
    except ValueError as exc:
        return _fail(str(exc))
    app = create_app(args.config)
    with app.test_client() as client:
        resp = client.post(f"/cds-services/{args.service}", json=req)
    body = resp.get_json(silent=True)
    if resp.status_code != 200:
        issues = (body or {}).get("issue") or [{}]
        return _fail(f"HTTP {resp.status_code}: " + "; ".join(i.get("diagnostics", "") for i in issues))
    out = []
    for card in body["cards"]:
        ext = (card.get("extension") or {}).get("org.remission-cds.assessment")
        out.append({"summary": card["summary"], "indicator": card["indicator"], **({"assessment": ext} if ext else {})})
    print(json.dumps({"cards": out} if args.full is False else body, indent=2, ensure_ascii=False))
    return 0


def cmd_vignettes(args: argparse.Namespace) -> int:
    from cds_service import create_app
    from cds_service.config import load_settings
    from cds_service.sandbox.vignettes import UnreadableVignette, card_criteria_of, to_patient

    doc = _read_json(args.file)
    items = doc if isinstance(doc, list) else [doc]
    base = load_settings(args.config)
    clients: dict[tuple, Any] = {}

    def client_for(options: dict) -> Any:
        """A test client of the service configured as the case asks (its criteria options on top of --config)."""
        key = tuple(sorted((k, str(v)) for k, v in options.items()))
        if key not in clients:
            cfg = base.model_dump()
            cfg["criteria_options"] = {**cfg.get("criteria_options", {}), **options}
            clients[key] = create_app(cfg).test_client()
        return clients[key]

    failures = 0
    rows = []
    for v in items:
        if not isinstance(v, dict) or "id" not in v:
            continue
        if args.id and v["id"] not in args.id:
            continue
        expected = v.get("expected") if isinstance(v.get("expected"), dict) else {}
        accept = expected.get("accept") or [expected.get("category")]
        try:
            patient = to_patient(v)
        except KeyError:
            rows.append((v["id"], str(accept), "-", "no converter"))
            failures += 1
            continue
        except Exception as exc:  # noqa: BLE001 - report and go on: one bad vignette must not hide the others
            rows.append((v["id"], str(accept), "-", f"error {type(exc).__name__}: {exc}"[:200]))
            failures += 1
            continue
        if isinstance(patient, UnreadableVignette):
            rows.append((v["id"], str(accept), "-", f"unreadable: {patient.error}"[:300]))
            failures += 1
            continue
        try:
            client = client_for(getattr(patient, "criteria_options", {}) or {})
            resp = client.post("/cds-services/remission-status", json=patient.hook_request())
            cards = resp.get_json()["cards"]
            criteria = card_criteria_of(v, patient)
        except Exception as exc:  # noqa: BLE001 - report and go on: one bad vignette must not hide the others
            rows.append((v["id"], str(accept), "-", f"error {type(exc).__name__}: {exc}"[:200]))
            failures += 1
            continue
        got = [c["extension"]["org.remission-cds.assessment"]["category"] for c in cards
               if (c.get("extension") or {}).get("org.remission-cds.assessment", {}).get("criteria") == criteria]
        ok = bool(got) and got[0] in accept
        failures += not ok
        rows.append((v["id"], " | ".join(map(str, accept)), got[0] if got else "(no card)", "ok" if ok else "FAIL"))
    width = max((len(r[0]) for r in rows), default=10)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[3]:<12}  expected {r[1]}  got {r[2]}")
    print(f"{sum(1 for r in rows if r[3] == 'ok')} passed, {failures} failed")
    return 1 if failures else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from cds_service.config_check import check_file

    problems = check_file(args.file)
    for p in problems:
        print(f"{args.file}: {p}")
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    import yaml

    from cds_service.config import load_settings
    from cds_service.config_check import masked

    try:
        settings = load_settings(args.config)
    except Exception as exc:  # a bad file: say so, no traceback
        return _fail(f"configuration is not valid ({type(exc).__name__}); run check-config for details")
    print(yaml.safe_dump(masked(settings), sort_keys=False, allow_unicode=True), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="remission-cds", description="CDS Hooks service for cancer response and remission")
    p.add_argument("--config", help="configuration file (YAML); default: $REMISSION_CDS_CONFIG or built-in defaults")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the CDS Hooks service (gunicorn, sync workers)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_serve)
    e = sub.add_parser("evaluate", help="print the assessment of a FHIR Bundle or a CDS Hooks request (JSON)")
    e.add_argument("file", help="path to a JSON file, or - for standard input")
    e.add_argument("--service", default="remission-status")
    e.add_argument("--full", action="store_true", help="print the full CDS Hooks response")
    e.set_defaults(func=cmd_evaluate)
    v = sub.add_parser("vignettes", help="convert vignettes (shared/vignettes format) to FHIR and check each card")
    v.add_argument("file")
    v.add_argument("--id", action="append", help="only this vignette id (repeatable)")
    v.set_defaults(func=cmd_vignettes)
    c = sub.add_parser("check-config", help="validate a configuration file; every problem with its line and a fix")
    c.add_argument("file")
    c.set_defaults(func=cmd_check_config)
    sc = sub.add_parser("show-config", help="print the effective configuration (file + environment), secrets masked")
    sc.set_defaults(func=cmd_show_config)
    from cds_service.sandbox.cli import add_sandbox_parser

    add_sandbox_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else _fail(exc.code)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
