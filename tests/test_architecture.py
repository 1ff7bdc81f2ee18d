"""Imports flow one way (cds_service -> fhir_mappings -> rules); rules is standard library only and clock-free."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cds_service", "fhir_mappings", "rules")
MAY_IMPORT = {"rules": {"rules"}, "fhir_mappings": {"fhir_mappings", "rules"},
              "cds_service": {"cds_service", "fhir_mappings", "rules"}}
THIRD_PARTY_ALLOWED = {"rules": set()}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_direction_is_one_way():
    bad = []
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            for name in _imports(f) & set(PACKAGES):
                if name not in MAY_IMPORT[pkg]:
                    bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_rules_uses_the_standard_library_only():
    bad = []
    for f in (ROOT / "rules").rglob("*.py"):
        for name in _imports(f) - {"rules", "__future__"}:
            if name not in sys.stdlib_module_names:
                bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_rules_never_reads_the_clock():
    bad = []
    for f in (ROOT / "rules").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("today", "now", "utcnow", "time", "monotonic"):
                if isinstance(node.value, ast.Name) and node.value.id in ("date", "datetime", "time"):
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert bad == []


def test_the_checker_would_catch_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import requests\nfrom datetime import date\nd = date.today()\nimport cds_service\n")
    assert "requests" in _imports(f) and "cds_service" in _imports(f)
