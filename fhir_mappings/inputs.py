"""The criteria inputs the mappers read through ``labs.lab_series``/``coded_series`` with an ``input_name``.

Health-IT teams add local codes per input name in the configuration; ``check-config`` uses this table to say
which names exist and which units each accepts. The table is read from the mapper modules themselves (every
call that passes ``input_name="..."``), so it cannot drift from what the mappers really read.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from functools import lru_cache

from fhir_mappings import units
from fhir_mappings.units import UnitSpec


@lru_cache(maxsize=1)
def known_inputs() -> dict[str, UnitSpec | None]:
    import fhir_mappings

    out: dict[str, UnitSpec | None] = {}
    for mod in pkgutil.iter_modules(fhir_mappings.__path__):
        if mod.name in ("inputs", "labs"):
            continue
        module = importlib.import_module(f"fhir_mappings.{mod.name}")
        try:
            tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        except (OSError, SyntaxError, TypeError):
            continue
        assigned: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                values = [node.value.body, node.value.orelse] if isinstance(node.value, ast.IfExp) else [node.value]
                for v in values:
                    if isinstance(v, ast.Constant) and isinstance(v.value, str):
                        assigned.setdefault(node.targets[0].id, set()).add(v.value)
        for node in ast.walk(tree):
            # loops over literal tables that name their input: for name, codes, input_name in (("x", C, "y"), ...)
            if isinstance(node, ast.For) and isinstance(node.target, ast.Tuple) and isinstance(
                    node.iter, (ast.Tuple, ast.List)):
                names = [e.id if isinstance(e, ast.Name) else None for e in node.target.elts]
                if "input_name" in names:
                    at = names.index("input_name")
                    for row in node.iter.elts:
                        if isinstance(row, (ast.Tuple, ast.List)) and len(row.elts) > at:
                            cell = row.elts[at]
                            if isinstance(cell, ast.Constant) and isinstance(cell.value, str):
                                out.setdefault(cell.value, None)
                continue
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("local_codes", "_keys", "_observations") and len(node.args) >= 2:
                arg = node.args[1] if func == "local_codes" else node.args[min(2, len(node.args) - 1)]
                for candidate in (arg, node.args[1]):
                    if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
                        out.setdefault(candidate.value, None)
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            name = kw.get("input_name")
            spec = None
            candidate = node.args[2] if len(node.args) > 2 else kw.get("spec")
            if isinstance(candidate, ast.Name):
                spec = getattr(module, candidate.id, None) or getattr(units, candidate.id, None)
            elif isinstance(candidate, ast.Attribute):
                spec = getattr(units, candidate.attr, None)
            spec = spec if isinstance(spec, UnitSpec) else None
            if isinstance(name, ast.Name):  # input_name=<variable>: the string constants assigned to it
                values = assigned.get(name.id, set())
            elif isinstance(name, ast.Constant) and isinstance(name.value, str):
                values = {name.value}
            else:
                continue
            for value in values:
                if out.get(value) is None:
                    out[value] = spec
    return dict(sorted(out.items()))
