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
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            name = kw.get("input_name")
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                continue
            spec = None
            candidate = node.args[2] if len(node.args) > 2 else kw.get("spec")
            if isinstance(candidate, ast.Name):
                spec = getattr(module, candidate.id, None) or getattr(units, candidate.id, None)
            elif isinstance(candidate, ast.Attribute):
                spec = getattr(units, candidate.attr, None)
            out.setdefault(name.value, spec if isinstance(spec, UnitSpec) else None)
            if out[name.value] is None and isinstance(spec, UnitSpec):
                out[name.value] = spec
    return dict(sorted(out.items()))
