"""Public-vignette inputs (shared/vignettes/public.json) -> FHIR patients, per criteria family.

Each converter writes the vignette's clinical facts as the FHIR a real record would carry (documented in
docs/fhir-inputs.md) — measurements, labs, coded findings, report text — never the expected answer. The
vignette's precomputed shortcuts (a given nadir, a prior category) become the resources that would hold
them in a record (an earlier measurement, a reported assessment).
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable

from cds_service.sandbox.builders import PatientBuilder
from fhir_mappings import codes

Vignette = dict[str, Any]


class NotMine(KeyError):
    """Raised by a converter for a vignette of its prefix that another converter owns (e.g. IMWG MRD)."""


class VignetteInputError(ValueError):
    """A vignette input the converter cannot read (an unknown field of a kind it uses, a value in an unknown shape).

    The message names the vignette and the field: a fact the converter cannot read is never dropped or guessed,
    since the card would then silently answer a different question."""

    def __init__(self, vignette_id: str, field: str, problem: str) -> None:
        self.vignette_id, self.field, self.problem = vignette_id, field, problem
        super().__init__(f"vignette {vignette_id}: inputs.{field}: {problem}")


class UnreadableVignette:
    """What :func:`to_patient` returns for a vignette whose inputs cannot be read.

    Runners convert a vignette and then send ``hook_request()``; this placeholder raises the
    :class:`VignetteInputError` there, so that the runner reports that one vignette as failed, with the field in
    the message, and goes on with the others (the ``vignettes`` command counts it as an error, a test fails with
    the message)."""

    card_criteria: str | None = None

    def __init__(self, error: VignetteInputError) -> None:
        self.error = error
        self.patient_id = f"unreadable-{error.vignette_id}"

    def hook_request(self, **_: Any) -> Any:
        raise self.error

    def prefetch(self) -> Any:
        raise self.error


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


# the converter of a vignette whose id prefix has none, from its "criteria" text (first match wins: the more
# specific names come first)
_CRITERIA_ROUTES = (
    (re.compile(r"\bmRECIST\b", re.I), "mRECIST"),
    (re.compile(r"\biRECIST\b", re.I), "iRECIST"),
    (re.compile(r"\bRECIST\b", re.I), "RECIST"),
    (re.compile(r"\bChoi\b", re.I), "CHOI"),
    (re.compile(r"\bLugano\b|Deauville|lymphoma", re.I), "LUGANO"),
    (re.compile(r"\bMRD\b|minimal residual|measurable residual", re.I), "MRD"),
    (re.compile(r"\bELN\b|\bAML\b|acute myeloid", re.I), "ELN"),
    (re.compile(r"\bIMWG\b|myeloma", re.I), "IMWG"),
    (re.compile(r"\biwCLL\b|\bCLL\b|chronic lymphocytic", re.I), "CLL"),
    (re.compile(r"\bATA\b|thyroid", re.I), "ATA"),
    (re.compile(r"\bpCR\b|\bRCB\b|breast|Symmans", re.I), "PCR"),
    (re.compile(r"\bPCWG\d?\b|prostate", re.I), "PCWG3"),
    (re.compile(r"\bRANO\b|glioma|glioblastoma", re.I), "RANO"),
    (re.compile(r"\bGCIG\b|CA[- ]?125|ovarian", re.I), "GCIG"),
)


def converter_key(v: Vignette) -> str:
    """The converter family of a vignette: its id prefix when a converter has it, else its criteria's name."""
    prefix = prefix_of(str(v.get("id", "")))
    if prefix in CONVERTERS:
        return prefix
    criteria = str(v.get("criteria") or v.get("title") or "")
    for rx, key in _CRITERIA_ROUTES:
        if rx.search(criteria) and key in CONVERTERS:
            return key
    return prefix


def to_patient(v: Vignette) -> PatientBuilder:
    """The FHIR patient of a vignette; :class:`UnreadableVignette` when its inputs cannot be read (see there).

    KeyError (and only KeyError) means "no converter for this prefix"."""
    for fn in CONVERTERS.get(converter_key(v), ()):
        try:
            return fn(v)
        except NotMine:
            continue
        except VignetteInputError as exc:
            if exc.vignette_id != v["id"]:  # raised by a helper that does not know the vignette
                exc = VignetteInputError(v["id"], exc.field, exc.problem)
            return UnreadableVignette(exc)  # type: ignore[return-value]
        except KeyError as exc:  # a field the converter needs is missing
            return UnreadableVignette(VignetteInputError(  # type: ignore[return-value]
                v["id"], str(exc.args[0]) if exc.args else "?", "required field missing"))
        except (ValueError, TypeError, AttributeError, ArithmeticError, IndexError) as exc:
            return UnreadableVignette(VignetteInputError(  # type: ignore[return-value]
                v["id"], "?", f"input in a shape the {converter_key(v)} converter cannot read "
                              f"({type(exc).__name__}: {exc})"))
    raise KeyError(f"no converter for vignette {v['id']}")


def card_criteria_of(v: Vignette, builder: PatientBuilder) -> str:
    """The criteria of the card that answers this vignette."""
    return getattr(builder, "card_criteria", None) or CARD_CRITERIA[converter_key(v)]


def has_converter(v: Vignette) -> bool:
    try:
        to_patient(v)
        return True
    except KeyError:
        return False


_QTY = re.compile(r"^\s*(?P<cmp><=|>=|<|>|≤|≥)?\s*(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)"
                  r"\s*(?P<unit>[A-Za-z%/×*\[°'][^(;]*?)?\s*(?:\((?P<paren>[^)]*)\))?\s*$")


def parse_quantity(raw: Any) -> tuple[Decimal, str | None, str] | None:
    """(value, comparator, unit text) of a number written as a number or a string: ``1.2``, ``"1,500"``,
    ``"3%"``, ``"1.2 x10^9/L"``, ``"<0.1 ng/mL"``, ``"800 mg/24h (24-h collection)"``.  The unit text is returned
    as written (without the parenthesised remark); ``""`` when there is none.  None when ``raw`` is not a number.
    A comma is read as a thousands separator only in the ``1,500`` pattern; ``"1,5"`` is not a number here."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, Decimal)):
        return Decimal(raw), None, ""
    if isinstance(raw, float):
        return Decimal(repr(raw)), None, ""
    if not isinstance(raw, str):
        return None
    t = raw.replace("−", "-").replace("µ", "u").replace("μ", "u")
    m = _QTY.match(t)
    if not m:
        return None
    cmp = {"≤": "<=", "≥": ">="}.get(m.group("cmp") or "", m.group("cmp"))
    return Decimal(m.group("num").replace(",", "")), cmp, (m.group("unit") or "").strip()


_COUNT_UNITS = (  # unit text of a blood count (lower case, spaces removed) -> UCUM
    (re.compile(r"^(?:x|×|\*)?10(?:\^|\*|e)?9/l$|^g/l$|^gpt/l$|^giga/l$"), "10*9/L"),
    (re.compile(r"^(?:x|×|\*)?10(?:\^|\*|e)?3/(?:u|mc)l$|^k/(?:u|mc)l$|^thou/(?:u|mc)l$|^10\^3/mm3$"), "10*3/uL"),
    (re.compile(r"^(?:x|×|\*)?10(?:\^|\*|e)?3/l$"), "10*3/L"),
    (re.compile(r"^(?:cells)?/(?:u|mc)l$|^/mm3$|^cells/mm3$|^per(?:u|mc)l$"), "/uL"),
)


def count_unit(text: str) -> str | None:
    """UCUM unit of a blood count written as text ("x10^9/L", "10^3/µL", "/uL", "K/uL"); None if unknown.
    ``10*3/L`` is returned as such (criteria.md §1: the mapper rejects it, it is never converted)."""
    t = re.sub(r"\s+", "", (text or "").lower()).replace("µ", "u").replace("μ", "u").replace("⁹", "^9")
    for rx, unit in _COUNT_UNITS:
        if rx.match(t):
            return unit
    return None


def check_keys(v: Vignette, d: dict, where: str, known: Callable[[str], bool], relevant: re.Pattern,
               family: str) -> None:
    """Raise :class:`VignetteInputError` for a field of ``d`` that looks like an input of this criterion
    (``relevant`` matches its name) but that the converter does not read (``known`` is False): it would otherwise
    be dropped without a word and the card would answer from the other fields."""
    for key in d:
        if not known(key) and relevant.search(key.lower()):
            raise VignetteInputError(v["id"], f"{where}{key}", f"field not read by the {family} vignette converter "
                                                               "(rename it to a documented field or extend the converter)")


_NOT_TIMEPOINT_KEYS = {"baseline", "new_lesions", "new_lesion", "new_nodes", "new_lymph_nodes", "targets",
                       "target_lesions", "lesions", "non_target", "timepoints", "followup", "follow_up", "followups",
                       "follow_ups"}


def gather_timepoints(v: Vignette, inp: dict) -> dict:
    """Imaging inputs with every dated assessment in ``followup``, for the baseline + follow-up readers of the
    iRECIST / mRECIST / Choi converters: besides ``timepoints`` and ``baseline`` + ``followup``, authors give a
    ``nadir`` (or ``week_8``, ``interim``...) object with its date, or a list under ``scans`` / ``assessments``.
    A dated object is an assessment whatever its name; dropping one would change the nadir (criteria.md §0
    convention 4)."""
    if isinstance(inp.get("timepoints"), list):
        return inp
    out = dict(inp)
    follow_key = next((k for k in ("followup", "follow_up", "followups", "follow_ups") if k in inp), None)
    follow = inp.get(follow_key) if follow_key else []
    follow = list(follow) if isinstance(follow, list) else [follow] if isinstance(follow, dict) else []
    extra = []
    for key, val in inp.items():
        if key.lower() in _NOT_TIMEPOINT_KEYS:
            continue
        if isinstance(val, dict) and isinstance(val.get("date"), str):
            extra.append(dict(val, label=val.get("label", key)))
            out.pop(key)
        elif isinstance(val, list) and val and all(isinstance(x, dict) and isinstance(x.get("date"), str)
                                                   for x in val):
            extra.extend(val)
            out.pop(key)
        elif isinstance(val, dict) and any(isinstance(x, (list, dict)) for x in val.values()):
            raise VignetteInputError(v["id"], key, "an assessment without a date")
    if extra:
        for k in ("followup", "follow_up", "followups", "follow_ups"):
            out.pop(k, None)
        out["followup"] = sorted(follow + extra, key=lambda t: str(t.get("date", "")))
    return out


_IMAGING_TOP = {"treatment", "drug", "therapy", "immunotherapy", "treatment_start", "confirmation_required",
                "trial_design", "modified", "modified_choi", "baseline", "followup", "follow_up", "followups",
                "follow_ups", "timepoints", "note", "notes", "histology", "tumor", "tumour", "disease", "setting",
                "new_lesions", "new_lesion", "new_intratumoral_nodules", "new_intratumoural_nodules",
                "intratumoral_nodules", "intratumoural_nodules", "non_target", "effusion", "effusion_new_or_increased",
                "ascites", "effusion_cytology", "cytology", "cytology_malignant", "non_measurable_progression",
                "symptomatic_deterioration", "new_nodes", "new_lymph_nodes", "as_of"}
_IMAGING_RELEVANT = re.compile(r"sum|target|lesion|viable|attenuation|(?:^|_)hu(?:_|$)|size|nodule|effusion|ascites|"
                               r"cytology|sld|(?:^|_)ld(?:_|$)|new|progress|deteriorat")


def check_imaging_top(v: Vignette, inp: dict, family: str) -> None:
    """The iRECIST / mRECIST / Choi converters read time points and the facts above; a top-level field that looks
    like a measurement or a finding but is none of them (e.g. ``target_sum_week8_mm``) is an error naming it.
    Dated objects and lists of dated objects are time points (:func:`gather_timepoints`)."""
    def known(key: str) -> bool:
        val = inp[key]
        return key.lower() in _IMAGING_TOP or (isinstance(val, dict) and isinstance(val.get("date"), str)) or (
            isinstance(val, list) and bool(val) and all(isinstance(x, dict) and "date" in x for x in val))
    check_keys(v, inp, "", known, _IMAGING_RELEVANT, family)


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
