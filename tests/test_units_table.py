"""The precomputed UCUM table of fhir_mappings.units gives exactly what ucumvert gives, and covers every conversion
a mapper can ask for, so a service worker never builds the UCUM registry for a hook call."""
from __future__ import annotations

import gc
import importlib
import pkgutil
from decimal import Decimal

import pytest

import fhir_mappings
from fhir_mappings import units
from fhir_mappings.units import ALIASES, UnitError, UnitSpec


def _all_specs() -> list[UnitSpec]:
    """Every UnitSpec the mapper modules define (module globals and the tables in them), and any other one alive.

    gc.get_objects alone is not enough: create_app's gc.freeze() hides what existed before it from the GC."""
    found: dict[int, UnitSpec] = {}

    def walk(obj, depth: int) -> None:
        if isinstance(obj, UnitSpec):
            found[id(obj)] = obj
        elif depth and isinstance(obj, dict):
            for v in obj.values():
                walk(v, depth - 1)
        elif depth and isinstance(obj, (list, tuple, set, frozenset)):
            for v in obj:
                walk(v, depth - 1)

    for mod in pkgutil.iter_modules(fhir_mappings.__path__):
        module = importlib.import_module(f"fhir_mappings.{mod.name}")
        for value in vars(module).values():
            walk(value, 3)
    for obj in gc.get_objects():
        walk(obj, 0)
    return list(found.values())


def _spec_pairs() -> set[tuple[str, str]]:
    """Every (unit, target) ``normalise`` can hand to ``factor`` for a UnitSpec, after ALIASES, identity left out."""
    out = set()
    for spec in _all_specs():
        target = ALIASES.get(spec.canonical, spec.canonical)
        for u in (spec.canonical,) + spec.accepted:
            u = spec.same_as.get(u, u)
            u = ALIASES.get(u, u)
            if u != target:
                out.add((u, target))
    return out


def _ucum(unit: str, target: str) -> str:
    """ucumvert's answer: the factor's str (digits and exponent), or '!' + the error's class name."""
    try:
        return str(units.ucum_factor(unit, target))
    except UnitError as exc:
        return "!" + str(exc).rsplit(": ", 1)[1]


def _table_literal(pairs) -> str:
    lines = ["_FACTORS = {"]
    answers = {p: _ucum(*p) for p in sorted(pairs, key=lambda p: (p[1], p[0]))}
    lines += [f"    {p!r}: {v!r}," for p, v in answers.items() if not v.startswith("!")] + ["}", "_UNCONVERTIBLE = {"]
    lines += [f"    {p!r}: {v[1:]!r}," for p, v in answers.items() if v.startswith("!")] + ["}"]
    return "\n".join(lines).replace("'", '"')


def test_the_table_was_computed_with_the_installed_ucum_libraries():
    from importlib.metadata import version

    installed = {name: version(name) for name in units._TABLE_VERSIONS}
    assert installed == units._TABLE_VERSIONS, (
        "the UCUM libraries changed: update _TABLE_VERSIONS and check the table (test below); until then every "
        "conversion goes through the registry")
    units._table_valid.cache_clear()
    assert units._table_valid()


def test_every_table_entry_is_what_ucumvert_answers():
    table = {**units._FACTORS, **{p: "!" + e for p, e in units._UNCONVERTIBLE.items()}}
    wrong = {p: (v, _ucum(*p)) for p, v in table.items() if _ucum(*p) != v}
    assert not wrong, f"table entries differ from ucumvert (table, ucumvert): {wrong}\n{_table_literal(table)}"


def test_the_table_covers_every_conversion_a_mapper_can_ask_for():
    pairs = _spec_pairs()
    assert len(pairs) > 30
    table = set(units._FACTORS) | set(units._UNCONVERTIBLE)
    missing = pairs - table
    assert not missing, f"add these to fhir_mappings/units.py: {sorted(missing)}\n{_table_literal(pairs | table)}"


def test_factor_and_normalise_answer_as_ucumvert_does_with_and_without_the_table(monkeypatch):
    pairs = sorted(_spec_pairs() | {("cm", "mm"), ("mg/(24.h)", "g/d"), ("K/uL", "10*9/L")})

    def answers() -> dict:
        units.factor.cache_clear()
        units._table_valid.cache_clear()
        out = {}
        for p in pairs:
            try:
                f = units.factor(*p)
                out[p] = (str(f), f.as_tuple())
            except UnitError as exc:
                out[p] = str(exc)
        return out

    with_table = answers()
    with monkeypatch.context() as m:
        m.setattr(units, "_TABLE_VERSIONS", {**units._TABLE_VERSIONS, "pint": "0.0-other"})
        without = answers()  # the installed versions differ from the table's: every answer from the registry
        assert not units._table_valid()
    units.factor.cache_clear()
    units._table_valid.cache_clear()
    assert with_table == without
    assert units.convert(Decimal("1.5"), "cm", "mm") == Decimal("15.0")


def test_a_unit_outside_the_table_still_goes_through_ucum():
    units.factor.cache_clear()
    assert units.factor("km", "m") == Decimal("1000.0")
    with pytest.raises(UnitError, match="cannot convert 'furlong' to 'm'"):
        units.factor("furlong", "m")
