"""``remission-cds check-config``: every problem in a configuration file, with its line and a fix."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cds_service.config import Settings, _did_you_mean, _merge


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


def _line_index(text: str) -> dict[tuple, int]:
    """(key path) -> 1-based line of that key (or list item) in the YAML text."""
    index: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                index[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return index


def _line_for(index: dict[tuple, int], path: tuple) -> int | None:
    while path:
        if path in index:
            return index[path]
        path = path[:-1]
    return None


def _closer(index: dict[tuple, int], loc: tuple, msg: str) -> tuple:
    """A more precise location than pydantic's for model-level checks: the key the message names."""
    import re

    for dotted in re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+)\b", msg):  # "auth.mode must be jwt ..."
        path = tuple(dotted.split("."))
        if path in index:
            return path
    quoted = re.search(r"'([^']+)'", msg)  # "unknown service 'remision-status'"
    if quoted and loc + (quoted.group(1),) in index:
        return loc + (quoted.group(1),)
    first = msg.split(" ", 1)[0]  # "mode jwt needs at least one trusted issuer" under auth
    if loc + (first,) in index:
        return loc + (first,)
    if not loc and ("environment",) in index:
        return ("environment",)
    return loc


def _model_fields_at(loc: tuple) -> list[str]:
    """Field names valid at the parent of ``loc`` (for 'did you mean')."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int) or model is None or not hasattr(model, "model_fields"):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        model = ann if hasattr(ann, "model_fields") else None
    return list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []


def check_data(data: dict[str, Any], text: str = "") -> list[Problem]:
    index = _line_index(text)
    problems: list[Problem] = []
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(p for p in e.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
            path = ".".join(str(p) for p in loc)
            if e.get("type") == "extra_forbidden":
                msg = f"unknown key '{loc[-1]}'{_did_you_mean(str(loc[-1]), _model_fields_at(loc))}"
            else:
                msg = e.get("msg", "invalid").removeprefix("Value error, ")
            problems.append(Problem(_line_for(index, _closer(index, loc, msg)), path, msg))
        settings = None
    problems += _check_mappings(data, index)
    if settings is not None and settings.surveillance:  # schedule overrides must still make a valid schedule
        from rules.surveillance import load_default_schedules, validate_schedules

        merged = _merge(load_default_schedules(), settings.surveillance)
        for msg in validate_schedules(merged):
            problems.append(Problem(_line_for(index, ("surveillance",)), "surveillance", msg))
    return problems


def _check_mappings(data: dict[str, Any], index: dict[tuple, int]) -> list[Problem]:
    from fhir_mappings.inputs import known_inputs
    from fhir_mappings.units import UnitError, factor, normalise

    out: list[Problem] = []
    mappings = data.get("mappings")
    if not isinstance(mappings, dict):
        return out
    inputs = known_inputs()
    for family, entries in mappings.items():
        if not isinstance(entries, dict):
            continue
        for input_name, codes in entries.items():
            path = ("mappings", family, input_name)
            if inputs and input_name not in inputs:
                out.append(Problem(_line_for(index, path), ".".join(map(str, path)),
                                   f"no mapper reads an input called '{input_name}'"
                                   f"{_did_you_mean(input_name, inputs)}"))
                continue
            spec = inputs.get(input_name)
            for i, code in enumerate(codes if isinstance(codes, list) else []):
                unit = code.get("unit") if isinstance(code, dict) else None
                if not unit:
                    continue
                cpath = path + (i, "unit")
                where = f"mappings.{family}.{input_name}"
                try:
                    if spec is not None:
                        normalise(__import__("decimal").Decimal(1), unit, spec)
                    else:
                        factor(unit, unit + "")  # parses the unit
                except UnitError as exc:
                    msg = str(exc)
                    if spec is not None and "not accepted" in msg:
                        msg = f"unit '{unit}' is not a unit for {spec.name}; use one of {', '.join(spec.all_units())}"
                    out.append(Problem(_line_for(index, cpath), where, msg))
    return out


def check_file(path: str | Path) -> list[Problem]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return [Problem(None, "", f"cannot read {path}: {exc.strerror}")]
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [Problem(mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(data, dict):
        return [Problem(1, "", "the configuration must be a mapping of keys at the top level")]
    return sorted(check_data(data, text), key=lambda p: (p.line or 0, p.path))


SECRET_KEYS = ("password", "secret", "token", "key", "jwks")


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration with secrets masked (database passwords, keys)."""
    import re

    data = settings.model_dump(mode="json")

    def mask(obj: Any, key: str = "") -> Any:
        if key == "jwks" and obj is not None:
            return "***"
        if isinstance(obj, dict):
            return {k: mask(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [mask(v, key) for v in obj]
        if isinstance(obj, str):
            if any(s in key.lower() for s in SECRET_KEYS) and key != "jwks_url":
                return "***"
            return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", obj)
        if obj is not None and key == "jwks":
            return "***"
        return obj

    return mask(data)
