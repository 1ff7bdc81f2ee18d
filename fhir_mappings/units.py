"""Unit normalisation through UCUM (the ``ucumvert`` library parses UCUM into pint units).

Each criteria input declares its canonical unit and the units a lab may plausibly send for it. A unit
outside that list is rejected with a message even when UCUM could convert it: counts in ``10*3/L`` are
dimensionally convertible to ``10*9/L`` but are a known data-entry error (criteria.md §1), and converting
them silently would turn a real count into nonsense.

Every conversion a mapper can ask for (each ``UnitSpec`` below and in the mapper modules: its accepted units to its
canonical one) is listed in ``_FACTORS``/``_UNCONVERTIBLE``, computed once with ucumvert (the versions in
``_TABLE_VERSIONS``) and recomputed by the tests (tests/test_units_table.py). So a service worker does not build the
UCUM registry (ucumvert + pint + lark: ~0.5 s and ~11 MiB of resident memory per worker) to convert what a hook call
can send; it is built, as before, for any other unit (``check-config`` on a configured unit), and for every unit when
the installed ucumvert, pint or lark are not the versions the table was computed with.
"""
from __future__ import annotations

import threading
from decimal import Decimal
from functools import lru_cache

_lock = threading.Lock()
_registry = None


class UnitError(ValueError):
    """The unit is unknown, not UCUM, or not acceptable for this input."""


def _ureg():
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                from ucumvert import PintUcumRegistry

                _registry = PintUcumRegistry()
    return _registry


def warm_up() -> None:
    """Called at app start so no request pays for unit set-up: checks that the precomputed table matches the
    installed UCUM libraries, and builds the UCUM registry now (~0.5 s) only when it does not."""
    if not _table_valid():
        _ureg()
    factor("g/L", "g/dL")


# Spellings labs send that UCUM parsers read differently (ucumvert reads "mg/(24.h)" with a wrong factor),
# mapped to an equivalent UCUM expression before conversion.
ALIASES = {
    "mg/(24.h)": "mg/d",
    "mg/24h": "mg/d",
    "mg/24.h": "mg/d",
    "g/(24.h)": "g/d",
    "K/uL": "10*3/uL",
    "HU": "[hnsf'U]",
}


@lru_cache(maxsize=512)
def factor(unit: str, target: str) -> Decimal:
    """Multiplicative factor from ``unit`` to ``target`` (both UCUM), exact for decimal prefixes.

    pint computes in binary floating point; the factor is rounded to 12 significant digits, which restores
    the exact power of ten (1e-06 -> 0.000001) for every conversion between the units we accept. The conversions
    the mappers' UnitSpecs allow come from the precomputed table (the same answers; see the module docstring).
    """
    unit, target = ALIASES.get(unit, unit), ALIASES.get(target, target)
    if unit == target:
        return Decimal(1)
    if _table_valid():
        known = _FACTORS.get((unit, target))
        if known is not None:
            return Decimal(known)
        error = _UNCONVERTIBLE.get((unit, target))
        if error is not None:
            raise UnitError(f"cannot convert '{unit}' to '{target}': {error}")
    return ucum_factor(unit, target)


def ucum_factor(unit: str, target: str) -> Decimal:
    """``factor`` computed by ucumvert/pint (no aliases, no table, no cache)."""
    ureg = _ureg()
    try:
        q = (1 * ureg.from_ucum(unit)).to(ureg.from_ucum(target))
    except Exception as exc:  # ucumvert/pint raise several types for bad units
        raise UnitError(f"cannot convert '{unit}' to '{target}': {type(exc).__name__}") from None
    f = Decimal(repr(float(q.magnitude)))
    return Decimal(format(f, ".12g"))


# The table: every (unit, target) a UnitSpec of the mappers converts, after ALIASES, with ucumvert's answer: the
# factor exactly as ``ucum_factor`` returns it (same digits and exponent), or the name of the error it raises.
# Regenerate with tests/test_units_table.py (its failure message prints the entries) when a spec or a version changes.
_TABLE_VERSIONS = {"ucumvert": "0.3.2", "pint": "0.25.3", "lark": "1.3.1"}
_FACTORS: dict[tuple[str, str], str] = {
    ("1", "%"): "100.0",
    ("/mm3", "/uL"): "1.00000000000",
    ("10*3/uL", "/uL"): "1000.0",
    ("10*6/L", "/uL"): "1.0",
    ("10*9/L", "/uL"): "1000.0",
    ("/mm3", "10*9/L"): "0.00100000000000",
    ("/uL", "10*9/L"): "0.001",
    ("10*3/mm3", "10*9/L"): "1.00000000000",
    ("10*3/uL", "10*9/L"): "1.0",
    ("10*6/mL", "10*9/L"): "1.0",
    ("10*9/l", "10*9/L"): "1.0",
    ("10^9/L", "10*9/L"): "1.0",
    ("U/ml", "U/mL"): "1.0",
    ("kU/L", "U/mL"): "1.0",
    ("kU/l", "U/mL"): "1.0",
    ("k[IU]/L", "[IU]/mL"): "1.0",
    ("g/L", "g/dL"): "0.1",
    ("mg/dL", "g/dL"): "0.001",
    ("u[IU]/mL", "m[IU]/L"): "1.0",
    ("g/d", "mg/d"): "1000.0",
    ("mg/L", "mg/dL"): "0.1",
    ("cm", "mm"): "10.0",
    ("m", "mm"): "1000.0",
    ("um", "mm"): "0.001",
    ("cm.cm", "mm2"): "100.0",
    ("cm2", "mm2"): "100.0",
    ("mm.mm", "mm2"): "1.0",
    ("cm3", "mm3"): "1000.0",
    ("mL", "mm3"): "1000.00000000",
    ("ng/dL", "ng/mL"): "0.01",
    ("ng/ml", "ng/mL"): "1.0",
    ("pg/mL", "ng/mL"): "0.00100000000000",
    ("ug/L", "ng/mL"): "1.00000000000",
    ("ug/l", "ng/mL"): "1.00000000000",
}
_UNCONVERTIBLE: dict[tuple[str, str], str] = {
    ("mmol/L", "g/dL"): "DimensionalityError",
    ("1", "{SUVbw}"): "UndefinedUnitError",
    ("SUV", "{SUVbw}"): "InvalidUcumError",
    ("g/mL", "{SUVbw}"): "UndefinedUnitError",
    ("g/ml", "{SUVbw}"): "UndefinedUnitError",
    ("{SUVbsa}", "{SUVbw}"): "AttributeError",
    ("{SUVlbm}", "{SUVbw}"): "AttributeError",
    ("{SUVmax}", "{SUVbw}"): "AttributeError",
    ("{SUV}", "{SUVbw}"): "AttributeError",
    ("{ratio}", "{SUVbw}"): "AttributeError",
}


@lru_cache(maxsize=1)
def _table_valid() -> bool:
    """Whether the installed ucumvert, pint and lark are the versions the table was computed with."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return all(version(name) == v for name, v in _TABLE_VERSIONS.items())
    except PackageNotFoundError:
        return False


def convert(value: Decimal, unit: str, target: str) -> Decimal:
    return value * factor(unit, target)


def normalise(value: Decimal, unit: str | None, spec: "UnitSpec") -> Decimal:
    """Convert ``value`` in ``unit`` to the canonical unit of ``spec`` or raise UnitError with a fix."""
    u = (unit or "").strip()
    if not u:
        if spec.unitless_ok:
            return value
        raise UnitError(f"no unit given; expected {spec.canonical}")
    if u in spec.rejected:
        raise UnitError(spec.rejected[u])
    if u not in spec.accepted and u != spec.canonical:
        raise UnitError(f"unit '{u}' is not accepted for {spec.name}; expected one of {', '.join(spec.all_units())}")
    return convert(value, spec.same_as.get(u, u), spec.canonical)


class UnitSpec:
    """The canonical unit of one criteria input and the units accepted for it."""

    def __init__(self, name: str, canonical: str, accepted: tuple[str, ...] = (), rejected: dict[str, str] | None = None,
                 unitless_ok: bool = False, same_as: dict[str, str] | None = None) -> None:
        self.name = name
        self.canonical = canonical
        self.accepted = tuple(accepted)
        self.rejected = dict(rejected or {})
        self.unitless_ok = unitless_ok
        # units that are numerically the same as a UCUM unit for this analyte although UCUM cannot convert them
        # (CA-125 '[IU]/mL' = 'U/mL': both are arbitrary assay units), applied before conversion
        self.same_as = dict(same_as or {})

    def all_units(self) -> tuple[str, ...]:
        return (self.canonical,) + tuple(u for u in self.accepted if u != self.canonical)

    def with_extra(self, units: tuple[str, ...]) -> "UnitSpec":
        return UnitSpec(self.name, self.canonical, self.accepted + tuple(units), self.rejected, self.unitless_ok,
                        self.same_as)


_COUNT_REJECT = {
    "10*3/L": "unit '10*3/L' is a million times too small for a blood count (criteria.md §1); did you mean 10*3/uL?",
    "10^3/L": "unit '10^3/L' is not UCUM and is a million times too small for a blood count; did you mean 10*3/uL?",
}

LENGTH_MM = UnitSpec("a lesion diameter", "mm", ("cm", "m", "um"))
AREA_MM2 = UnitSpec("a product of diameters", "mm2", ("cm2",))
COUNT_10E9_L = UnitSpec("a blood count", "10*9/L", ("10*3/uL", "10*3/mm3", "/uL", "/mm3", "10*6/mL", "K/uL"),
                        _COUNT_REJECT)
PERCENT = UnitSpec("a percentage", "%", (), unitless_ok=True)
SERUM_M_G_DL = UnitSpec("serum M-protein", "g/dL", ("g/L", "mg/dL"))
URINE_M_MG_24H = UnitSpec("24-h urine M-protein", "mg/(24.h)", ("mg/d", "g/(24.h)", "g/d", "mg/24h"))
FLC_MG_DL = UnitSpec("a free light chain", "mg/dL", ("mg/L",))
NG_ML = UnitSpec("a tumour marker", "ng/mL", ("ug/L", "ng/dL", "pg/mL"))
IU_ML = UnitSpec("an antibody titre", "[IU]/mL", ("k[IU]/L",))
U_ML = UnitSpec("CA-125", "U/mL", ("kU/L", "[IU]/mL", "k[IU]/L"), same_as={"[IU]/mL": "U/mL", "k[IU]/L": "kU/L"})
HB_G_DL = UnitSpec("haemoglobin", "g/dL", ("g/L", "mmol/L"))
HU = UnitSpec("CT attenuation", "[hnsf'U]", ("HU",), unitless_ok=True)
PSA_NG_ML = NG_ML
