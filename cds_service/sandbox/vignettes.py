"""Public-vignette inputs (shared/vignettes/public.json) -> FHIR patients, per criteria family.

Each converter writes the vignette's clinical facts as the FHIR a real record would carry (documented in
docs/fhir-inputs.md) — measurements, labs, coded findings, report text — never the expected answer. The
vignette's precomputed shortcuts (a given nadir, a prior category) become the resources that would hold
them in a record (an earlier measurement, a reported assessment).
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

from cds_service.sandbox.builders import PatientBuilder
from fhir_mappings import codes

Vignette = dict[str, Any]


class NotMine(KeyError):
    """Raised by a converter for a vignette of its prefix that another converter owns (e.g. IMWG MRD)."""


# vignette id prefix -> converters tried in order; the first that does not raise NotMine wins
CONVERTERS: dict[str, list[Callable[[Vignette], PatientBuilder]]] = {}
CARD_CRITERIA: dict[str, str] = {}   # vignette id prefix -> the card's extension criteria (default)


def converter(prefix: str, card_criteria: str):
    """Register a converter. It may set ``builder.card_criteria`` when one prefix spans several criteria."""
    def deco(fn: Callable[[Vignette], PatientBuilder]):
        CONVERTERS.setdefault(prefix, []).append(fn)
        CARD_CRITERIA.setdefault(prefix, card_criteria)
        return fn
    return deco


def prefix_of(vignette_id: str) -> str:
    return vignette_id.rsplit("-", 1)[0]


def to_patient(v: Vignette) -> PatientBuilder:
    for fn in CONVERTERS.get(prefix_of(v["id"]), ()):
        try:
            return fn(v)
        except NotMine:
            continue
    raise KeyError(f"no converter for vignette {v['id']}")


def card_criteria_of(v: Vignette, builder: PatientBuilder) -> str:
    """The criteria of the card that answers this vignette."""
    return getattr(builder, "card_criteria", None) or CARD_CRITERIA[prefix_of(v["id"])]


def has_converter(v: Vignette) -> bool:
    try:
        to_patient(v)
        return True
    except KeyError:
        return False


def _pid(v: Vignette) -> str:
    return "vig-" + v["id"].lower().replace("_", "-").replace(".", "-")


# --- RECIST 1.1 ---------------------------------------------------------------------------------

def _confirmation_required(design: str | None) -> bool:
    d = (design or "").lower()
    return ("single-arm" in d or "non-random" in d or "nonrandom" in d or "phase ii" in d) and "randomi" not in d.replace(
        "non-randomi", "")


def _size_mm(t: dict, base: str) -> Any:
    """A size given as ``<base>_mm`` or ``<base>_cm`` (criteria.md §15 unit suffixes), in mm; None if absent."""
    if t.get(f"{base}_mm") is not None:
        return t[f"{base}_mm"]
    if t.get(f"{base}_cm") is not None:
        from decimal import Decimal

        return Decimal(str(t[f"{base}_cm"])) * 10
    return None


def _is_nodal(t: dict) -> bool:
    if t.get("type") is not None:
        return str(t["type"]).lower() in ("nodal", "node", "lymph node")
    if isinstance(t.get("nodal"), bool):
        return t["nodal"]
    site = str(t.get("site", "")).lower()
    return "lymph node" in site or site.endswith(" ln") or " ln " in f" {site} "


def _non_target_value(nt: Any) -> str:
    txt = str(nt).lower()
    if txt in ("none", "no", "absent at baseline"):
        return "none"
    if "not unequivocal" in txt or ("equivocal" in txt and "unequivocal" not in txt):
        return "non-CR/non-PD"
    if txt == "pd" or txt.startswith("pd") or "unequivocal" in txt or "progression" in txt:
        return "PD"
    if txt.startswith("cr") or "disappeared" in txt or "absent" in txt or "resolved" in txt:
        return "CR"
    if "not evaluated" in txt or "not assessed" in txt or txt == "ne":
        return "NE"
    return "non-CR/non-PD"


@converter("RECIST", "RECIST 1.1")
def recist(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C80.1", text="Malignant neoplasm, metastatic solid tumour", onset="2023-12-01")
    if inp.get("confirmation_required") is True or _confirmation_required(inp.get("trial_design")):
        first = (inp.get("timepoints") or inp.get("timepoint_overall_responses") or [{}])[0].get("date", "2024-01-01")
        p.observation(codes.TRIAL_CONFIRMATION, first, value_bool=True, category="survey")
    if inp.get("treatment_start"):
        p.medication(inp["treatment_start"], "Systemic anticancer therapy (protocol)")
    lesions: dict[str, dict] = {}
    for tp in inp.get("timepoints", []):
        when = tp["date"]
        results = []
        targets = list(tp.get("target_lesions") or [])
        if not targets and _size_mm(tp, "target_sum") is not None:
            # only the sum of diameters is given: the record holds it as one aggregate target measurement
            targets = [{"id": "SUM", "site": "sum of target lesion diameters", "type": "non-nodal",
                        "ld_mm": _size_mm(tp, "target_sum")}]
        for t in targets:
            nodal = _is_nodal(t)
            lid = str(t.get("id") or t.get("site") or f"T{len(lesions) + 1}")
            if lid not in lesions:
                lesions[lid] = p.lesion(lid, t.get("site", "unspecified"), nodal=nodal)
            body = lesions[lid]
            size = (_size_mm(t, "short_axis") if nodal else None)
            if size is None:
                size = _size_mm(t, "ld")
            reported = (t.get("reported_as") or "").lower()
            kwargs: dict[str, Any] = {"role": "target"}
            if size is None and ("disappeared" in reported or "resolved" in reported):
                size = 0
            if size is None:
                kwargs["not_assessed"] = True
            elif nodal:
                kwargs["short_axis_mm"] = size
                kwargs["longest_mm"] = _size_mm(t, "ld") or size
            else:
                kwargs["longest_mm"] = size
            if "too small" in reported and size is None:
                kwargs = {"role": "target", "too_small": True}
            results.append(p.tumor_size(body, when, **kwargs))
        nt = tp.get("non_target")
        if nt is not None:
            results.append(p.observation(codes.NON_TARGET_RESPONSE, when, value_code=_non_target_value(nt),
                                         category="imaging", note=tp.get("non_target_details")))
        nl = tp.get("new_lesions")
        if isinstance(nl, list):
            nl = bool(nl)
        if isinstance(nl, (int, float)) and not isinstance(nl, bool):
            nl = nl > 0
        if isinstance(nl, bool):
            results.append(p.observation(codes.NEW_LESION, when, value_bool=nl, category="imaging"))
        elif isinstance(nl, str):
            value = "equivocal" if "equivocal" in nl.lower() and "unequivocal" not in nl.lower() else (
                "no" if nl.lower() in ("no", "none", "false") else "yes")
            results.append(p.observation(codes.NEW_LESION, when, value_code=("http://remission-cds.org/fhir/"
                                         "CodeSystem/criteria-inputs", value), category="imaging"))
        p.report(when, results=results, conclusion=None)
    for r in inp.get("timepoint_overall_responses", []):
        obs = p.observation(codes.TIMEPOINT_RESPONSE, r["date"], value_code=r["overall"], category="imaging")
        p.report(r["date"], results=[obs])
    return p


def _load_converters() -> None:
    """Import every ``cds_service/sandbox/vignettes_*.py``: each registers converters for one family."""
    import importlib
    import pkgutil

    import cds_service.sandbox as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("vignettes_"):
            importlib.import_module(f"cds_service.sandbox.{mod.name}")


_load_converters()
