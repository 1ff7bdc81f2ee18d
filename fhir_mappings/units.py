"""Unit normalisation through UCUM (the ``ucumvert`` library parses UCUM into pint units).

Each criteria input declares its canonical unit and the units a lab may plausibly send for it. A unit
outside that list is rejected with a message even when UCUM could convert it: counts in ``10*3/L`` are
dimensionally convertible to ``10*9/L`` but are a known data-entry error (criteria.md §1), and converting
them silently would turn a real count into nonsense.
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
    """Build the UCUM registry now (it takes ~0.5 s); called at app start so no request pays for it."""
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
    the exact power of ten (1e-06 -> 0.000001) for every conversion between the units we accept.
    """
    unit, target = ALIASES.get(unit, unit), ALIASES.get(target, target)
    if unit == target:
        return Decimal(1)
    ureg = _ureg()
    try:
        q = (1 * ureg.from_ucum(unit)).to(ureg.from_ucum(target))
    except Exception as exc:  # ucumvert/pint raise several types for bad units
        raise UnitError(f"cannot convert '{unit}' to '{target}': {type(exc).__name__}") from None
    f = Decimal(repr(float(q.magnitude)))
    return Decimal(format(f, ".12g"))


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
