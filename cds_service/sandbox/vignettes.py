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

MIN_SD_INTERVAL = "http://remission-cds.org/fhir/CodeSystem/criteria-inputs|min-sd-interval-days"  # protocol component

_NOT_REQUIRED_ENDPOINT = re.compile(r"progression[- ]free|\bpfs\b|overall survival|\bos\b|time to progression|\bttp\b|"
                                    r"disease control|stable disease|\bdcr\b")


def _confirmation_required(design: str | None, endpoint: str | None = None) -> bool:
    """criteria.md §2.9: CR/PR confirmation is required only in non-randomised trials where response is the primary
    endpoint; randomised trials, or an SD/PD/PFS (or survival) primary endpoint, need none. A single-arm design that
    names no endpoint is read as a response-endpoint trial (public RECIST-17)."""
    d = (design or "").lower()
    if re.search(r"confirmation (?:is )?not required|no confirmation|without confirmation", d):
        return False
    if re.search(r"confirmation (?:is )?required|confirmed response", d):
        return True
    non_random = "single-arm" in d or "single arm" in d or "non-random" in d or "nonrandom" in d or "phase ii" in d
    if not non_random or "randomi" in d.replace("non-randomi", "").replace("nonrandomi", ""):
        return False
    ep = f"{d} {(endpoint or '').lower()}"
    m = re.search(r"(?:primary )?end[- ]?point[^;,)]*", ep)
    if m and _NOT_REQUIRED_ENDPOINT.search(m.group(0)) and not re.search(r"response rate|\borr\b|objective response",
                                                                             m.group(0)):
        return False
    if endpoint and _NOT_REQUIRED_ENDPOINT.search(endpoint.lower()):
        return False
    return True


_SIZE_UNITS = {"mm": Decimal(1), "cm": Decimal(10), "": None}


def _mm(v: Vignette, field: str, raw: Any, default_unit: str | None) -> Decimal | str | None:
    """A diameter in mm from a number or a string with its unit ("45 mm", "3.5 cm"); the words "too small to
    measure", "not assessed"/"not imaged" and "disappeared" come back as the markers "too_small", "ne" and 0."""
    if raw is None:
        return None
    if isinstance(raw, str):
        t = raw.strip().lower()
        if "too small" in t or t in ("tstm", "present, too small"):
            return "too_small"
        if re.search(r"not (?:assessed|imaged|evaluated|measured|seen|done)|^ne$|^n/?a$|unevaluable|missing", t):
            return "ne"
        if re.search(r"disappear|resolved|absent|^gone|not visible", t):
            return Decimal(0)
    q = parse_quantity(raw)
    if q is None or q[1] is not None:
        raise VignetteInputError(v["id"], field, f"size {raw!r} is not a number with a unit (mm or cm)")
    value, _, unit = q
    unit = unit.lower().strip().rstrip(".")
    if unit not in _SIZE_UNITS:
        raise VignetteInputError(v["id"], field, f"unit {unit!r} of {raw!r} is not mm or cm")
    factor = _SIZE_UNITS[unit] or (_SIZE_UNITS[default_unit] if default_unit else None)
    if factor is None:
        raise VignetteInputError(v["id"], field, f"size {raw!r} has no unit (write it as <name>_mm / <name>_cm or "
                                                 "with the unit in the value)")
    if value < 0:
        raise VignetteInputError(v["id"], field, f"negative size {raw!r}")
    return value * factor


_LD_KEYS = ("ld", "longest_diameter", "longest_axis", "long_axis", "diameter", "size", "longest")
_SA_KEYS = ("short_axis", "sa", "short_axis_diameter")
_FRAG_KEYS = ("fragments", "fragment_lds", "split_fragments", "fragments_ld")
_LESION_KEYS = {"id", "lesion_id", "name", "site", "location", "organ", "type", "nodal", "node", "reported_as",
                "note", "notes", "comment", "description", "status", "role", "method", "modality", "finding"}
_LESION_SIZE_LIKE = re.compile(r"mm|cm|diam|axis|size|(?:^|_)(?:ld|sa|ld_|sum)|fragment|measure|length|longest")


def _size_field(v: Vignette, t: dict, where: str, bases: tuple[str, ...]) -> Any:
    """The first of ``<base>_mm`` / ``<base>_cm`` / ``<base>`` (unit in the value) present in ``t``, in mm."""
    for base in bases:
        for suffix, unit in (("_mm", "mm"), ("_cm", "cm"), ("", None)):
            key = f"{base}{suffix}"
            if key in t and t[key] is not None:
                return _mm(v, f"{where}{key}", t[key], unit)
            if key in t and t[key] is None:
                return "ne"
    return None


def _lesion_known(key: str) -> bool:
    k = key.lower()
    if k in _LESION_KEYS:
        return True
    for base in _LD_KEYS + _SA_KEYS + _FRAG_KEYS:
        if k in (base, f"{base}_mm", f"{base}_cm"):
            return True
    return False


def _is_nodal(t: dict) -> bool:
    if t.get("type") is not None:
        ty = str(t["type"]).lower()
        if ty in ("nodal", "node", "lymph node", "ln", "lymph_node") or "nodal" == ty.split()[0]:
            return True
        if ty in ("non-nodal", "nonnodal", "non nodal", "extranodal", "visceral"):
            return False
    for key in ("nodal", "node"):
        if isinstance(t.get(key), bool):
            return t[key]
    if any(k.startswith(("short_axis", "sa_")) or k == "sa" for k in t):
        return True
    site = f"{t.get('site', '')} {t.get('location', '')} {t.get('organ', '')} {t.get('id', '')}".lower()
    return "lymph node" in site or bool(re.search(r"\bln\b|\bnode\b|\bnodes\b|nodal", site))


def _target_list(v: Vignette, tp: dict, where: str) -> list[dict]:
    """Target lesions of a time point: a list of objects, or an object keyed by lesion id (value: a size in mm or
    an object)."""
    raw = None
    for key in ("target_lesions", "targets", "target"):
        if key in tp:
            raw, where = tp[key], f"{where}{key}"
            break
    if raw is None:
        return []
    if isinstance(raw, dict):
        out = []
        for lid, val in raw.items():
            if isinstance(val, dict):
                out.append(dict(val, id=val.get("id", lid)))
            else:
                out.append({"id": lid, "ld": val if isinstance(val, str) else None,
                            **({"ld_mm": val} if not isinstance(val, str) else {})})
        return out
    if isinstance(raw, list) and all(isinstance(x, dict) for x in raw):
        return raw
    raise VignetteInputError(v["id"], where, "target lesions must be a list of lesion objects or an object keyed "
                                             "by lesion id")


_NT_NONE = re.compile(r"^(?:none|no|nil|n/?a|-|false|absent at baseline|not present)\b|^no non[- ]?target|"
                      r"^none at baseline|no non[- ]?target (?:lesions|disease)")
_NT_NE = re.compile(r"\bnot (?:evaluated|assessed|imaged|evaluable|done|performed|measured)\b|^ne\b|unevaluable|"
                    r"inevaluable|not all evaluated")
_NT_NONPD = re.compile(r"non[- ]?cr\s*/\s*non[- ]?pd|non[- ]?pd|\bno (?:unequivocal )?progression|not unequivocal|"
                       r"(?<!un)equivocal|\bstable\b|\bpersist|unchanged|no change|no significant change")
_NT_PD = re.compile(r"^pd\b|unequivocal|progress(?:ion|ive|ed)\b|\bpd\b")
_NT_CR = re.compile(r"^cr\b|complete response|\bcr\b|disappear|resolved|\babsent\b|no longer (?:seen|visible)|"
                    r"normali[sz]")


def _non_target_value(v: Vignette, nt: Any, where: str) -> str | None:
    """Non-target status of a time point (criteria.md §2.5): CR | non-CR/non-PD | PD | NE, or "none" when the patient
    has no non-target disease; None when not given."""
    if nt is None:
        return None
    if isinstance(nt, bool):
        return "non-CR/non-PD" if nt else "none"
    if isinstance(nt, dict):
        for key in ("status", "response", "category", "overall", "assessment"):
            if key in nt:
                return _non_target_value(v, nt[key], f"{where}.{key}")
        raise VignetteInputError(v["id"], where, "non-target object without a status/response field")
    if isinstance(nt, list):
        vals = [_non_target_value(v, x.get("status", x.get("response")) if isinstance(x, dict) else x, where)
                for x in nt]
        vals = [x for x in vals if x not in (None, "none")]
        if not vals:
            return "none"
        for cat in ("PD", "NE", "non-CR/non-PD"):
            if cat in vals:
                return cat
        return "CR"
    txt = str(nt).strip().lower()
    if _NT_NONE.search(txt):
        return "none"
    if _NT_NE.search(txt):
        return "NE"
    if _NT_NONPD.search(txt):
        return "non-CR/non-PD"
    if _NT_PD.search(txt):
        return "PD"
    if _NT_CR.search(txt):
        return "CR"
    return "non-CR/non-PD"  # a description of disease that is present ("small right pleural effusion")


def _new_lesion_value(v: Vignette, nl: Any, where: str) -> str | None:
    """yes | no | equivocal from a bool, a count, a list of lesions or words; None when not given.
    A new node with short axis < 10 mm is not a new lesion (criteria.md §2.6, §2.1)."""
    if nl is None:
        return None
    if isinstance(nl, bool):
        return "yes" if nl else "no"
    if isinstance(nl, (int, float, Decimal)):
        return "yes" if nl > 0 else "no"
    if isinstance(nl, dict):
        for key in ("present", "new_lesions", "value", "status"):
            if key in nl:
                return _new_lesion_value(v, nl[key], f"{where}.{key}")
        nl = [nl]
    if isinstance(nl, list):
        found = []
        for i, x in enumerate(nl):
            if isinstance(x, dict):
                words = " ".join(str(x.get(k, "")) for k in ("status", "description", "note", "reported_as")).lower()
                if x.get("equivocal") is True or ("equivocal" in words and "unequivocal" not in words):
                    found.append("equivocal")
                    continue
                if _is_nodal(x):
                    sa = _size_field(v, x, f"{where}[{i}].", _SA_KEYS) or _size_field(v, x, f"{where}[{i}].", _LD_KEYS)
                    if isinstance(sa, Decimal) and sa < 10:
                        continue  # a node < 10 mm short axis is normal, not a new lesion
                found.append("yes")
            else:
                found.append(_new_lesion_value(v, x, f"{where}[{i}]") or "no")
        return "yes" if "yes" in found else ("equivocal" if "equivocal" in found else "no")
    txt = str(nl).strip().lower()
    if "equivocal" in txt and "unequivocal" not in txt:
        return "equivocal"
    if re.match(r"^(?:no|none|false|absent|nil|not present|0)\b", txt):
        return "no"
    return "yes"


_TP_KEYS = {"date", "label", "timepoint", "visit", "week", "day", "days_from_start", "study_day", "non_target",
            "non_target_response", "non_target_status", "non_target_lesions", "non_target_details", "new_lesions",
            "new_lesion", "new_lesions_details", "new_lesion_details", "target_lesions", "targets", "target",
            "lesions", "note", "notes", "reported_as", "comment", "modality", "imaging", "scan"}
_TP_RELEVANT = re.compile(r"sum|target|lesion|mm|cm|size|new|progress|response|overall|date|week|day|ld|sld")
_SUM_KEYS = ("target_sum", "sum", "sum_of_diameters", "sod", "sld", "target_sld", "sum_diameters", "sum_ld")
_TOP_KEYS = {"trial_design", "design", "trial", "confirmation_required", "primary_endpoint", "endpoint",
             "treatment_start", "treatment_start_date", "min_sd_interval_days", "min_sd_days", "min_sd_interval_weeks",
             "min_sd_weeks", "min_sd_duration_days", "min_sd_duration_weeks", "timepoints", "baseline", "followup",
             "follow_up", "followups", "follow_ups", "timepoint_overall_responses", "note", "notes", "histology",
             "tumor", "tumour", "disease", "setting", "as_of", "diagnosis", "treatment", "therapy"}
_TOP_RELEVANT = re.compile(_IMAGING_RELEVANT.pattern + r"|min_sd|confirm|overall|response|timepoint|scan|assessment|"
                                                       r"visit|start|design|endpoint")


def _label_date(v: Vignette, tp: dict, anchor: date | None, where: str) -> str:
    """The date of a time point given by its label or offset only ("week 8", "day 56", ``week: 8``)."""
    if isinstance(tp.get("date"), str):
        return tp["date"]
    offset = None
    for key, mult in (("days_from_start", 1), ("study_day", 1), ("day", 1), ("week", 7)):
        if isinstance(tp.get(key), (int, float)) and not isinstance(tp.get(key), bool):
            offset = int(tp[key] * mult)
            break
    label = str(tp.get("label") or tp.get("timepoint") or tp.get("visit") or "").lower()
    if offset is None:
        if re.match(r"^\s*(?:baseline|screening|pre-?treatment)\b", label):
            offset = 0
        m = re.search(r"\b(?:week|wk|w)\s*(\d+)\b", label)
        if m:
            offset = 7 * int(m.group(1))
        m = re.search(r"\bday\s*(\d+)\b", label)
        if m and offset is None:
            offset = int(m.group(1))
    if offset is None or anchor is None:
        raise VignetteInputError(v["id"], f"{where}date", "time point without a date (and no 'week N' / 'day N' "
                                                          "label with a dated baseline or treatment_start)")
    return (anchor + timedelta(days=offset)).isoformat()


def _recist_timepoints(v: Vignette, inp: dict) -> list[dict]:
    """Every imaging time point, oldest first, each with a date: from ``timepoints`` (a list, or an object keyed by
    label) or from ``baseline`` + ``followup`` (and other dated objects, :func:`gather_timepoints`)."""
    raw = inp.get("timepoints")
    if isinstance(raw, dict):
        raw = [dict(val, label=val.get("label", key)) for key, val in raw.items() if isinstance(val, dict)]
    elif raw is None:
        if "baseline" not in inp:
            return []
        g = gather_timepoints(v, {k: val for k, val in inp.items() if k != "timepoint_overall_responses"})
        base = g.get("baseline")
        if not isinstance(base, dict):
            raise VignetteInputError(v["id"], "baseline", "baseline must be an object (a time point)")
        follow = g.get("followup") or g.get("follow_up") or g.get("followups") or g.get("follow_ups") or []
        follow = follow if isinstance(follow, list) else [follow]
        raw = [dict(base, label=base.get("label", "baseline"))] + list(follow)
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise VignetteInputError(v["id"], "timepoints", "time points must be a list of objects")
    start = inp.get("treatment_start") or inp.get("treatment_start_date")
    first_date = next((t["date"] for t in raw if isinstance(t.get("date"), str)), None)
    base_date = raw[0].get("date") if raw and isinstance(raw[0].get("date"), str) else None
    anchor_txt = start or base_date or first_date
    anchor = date.fromisoformat(anchor_txt[:10]) if anchor_txt else None
    out = []
    for i, tp in enumerate(raw):
        out.append(dict(tp, date=_label_date(v, tp, anchor, f"timepoints[{i}].")))
    return sorted(out, key=lambda t: t["date"])


def _min_sd_days(v: Vignette, inp: dict) -> int | None:
    for key, mult in (("min_sd_interval_days", 1), ("min_sd_days", 1), ("min_sd_duration_days", 1),
                      ("min_sd_interval_weeks", 7), ("min_sd_weeks", 7), ("min_sd_duration_weeks", 7)):
        if inp.get(key) is not None:
            q = parse_quantity(inp[key])
            if q is None:
                raise VignetteInputError(v["id"], key, f"{inp[key]!r} is not a number of days/weeks")
            unit = q[2].lower()
            if unit.startswith("w"):
                mult = 7
            elif unit.startswith("d"):
                mult = 1
            return int(q[0] * mult)
    return None


@converter("RECIST", "RECIST 1.1")
def recist(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    check_keys(v, inp, "", lambda k: k.lower() in _TOP_KEYS or (isinstance(inp[k], dict) and "date" in inp[k]),
               _TOP_RELEVANT, "RECIST")
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C80.1", text="Malignant neoplasm, metastatic solid tumour", onset="2023-12-01")
    timepoints = _recist_timepoints(v, inp)
    reported = inp.get("timepoint_overall_responses") or []
    start = inp.get("treatment_start") or inp.get("treatment_start_date")
    if reported:
        rows = []
        for i, r in enumerate(reported):
            if not isinstance(r, dict):
                raise VignetteInputError(v["id"], f"timepoint_overall_responses[{i}]", "must be an object")
            overall = next((r[k] for k in ("overall", "overall_response", "response", "category", "timepoint_response")
                            if r.get(k) is not None), None)
            if overall is None:
                raise VignetteInputError(v["id"], f"timepoint_overall_responses[{i}].overall", "required field missing")
            overall = str(overall).strip().upper().replace("NON-CR/NON-PD", "non-CR/non-PD")
            if overall not in ("CR", "PR", "SD", "PD", "NE", "non-CR/non-PD"):
                raise VignetteInputError(v["id"], f"timepoint_overall_responses[{i}].overall",
                                         f"{overall!r} is not CR/PR/SD/PD/NE/non-CR/non-PD")
            anchor = date.fromisoformat(start[:10]) if start else None
            rows.append((_label_date(v, r, anchor, f"timepoint_overall_responses[{i}]."), overall))
        reported = rows
    dates = [t["date"] for t in timepoints] + [d for d, _ in reported]
    required = inp.get("confirmation_required")
    if isinstance(required, str):
        required = required.strip().lower() in ("yes", "true", "required", "y")
    if required is None:
        required = _confirmation_required(inp.get("trial_design") or inp.get("design") or inp.get("trial"),
                                          inp.get("primary_endpoint") or inp.get("endpoint"))
    min_sd = _min_sd_days(v, inp)
    if dates:
        comps = [{"code": {"coding": [{"system": MIN_SD_INTERVAL.split("|")[0], "code": MIN_SD_INTERVAL.split("|")[1]}]},
                  "valueQuantity": {"value": min_sd, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}}
                 ] if min_sd is not None else []
        if required or comps:
            p.observation(codes.TRIAL_CONFIRMATION, min(dates), value_bool=bool(required), category="survey",
                          components=comps)
    if start:
        p.medication(start, "Systemic anticancer therapy (protocol)")
    lesions: dict[str, dict] = {}
    for i, tp in enumerate(timepoints):
        where = f"timepoints[{i}]."
        check_keys(v, tp, where, lambda k: k.lower() in _TP_KEYS or any(
            k.lower() in (b, f"{b}_mm", f"{b}_cm") for b in _SUM_KEYS), _TP_RELEVANT, "RECIST")
        when = tp["date"]
        results = []
        targets = _target_list(v, tp, where)
        tsum = _size_field(v, tp, where, _SUM_KEYS)
        if targets and tsum is not None:
            pass  # the lesions are what the record holds; the stated sum is the author's arithmetic
        elif not targets and tsum is not None:
            # only the sum of diameters is given: the record holds it as one aggregate target measurement
            targets = [{"id": "SUM", "site": "sum of target lesion diameters", "type": "non-nodal",
                        "ld_mm": None if tsum == "ne" else tsum, **({"reported_as": "not assessed"} if tsum == "ne"
                                                                     else {})}]
        entries: list[tuple[dict, str | None, str]] = [(t, "target", f"{where}target_lesions[{j}].")
                                                       for j, t in enumerate(targets)]
        if tp.get("lesions") is not None:
            # every lesion measured, no target/non-target choice: the record carries no role and the mapper selects
            # the targets at baseline as RECIST does (5 in all, 2 per organ; criteria.md §2.2)
            if any(_target_list(v, t, "") for t in timepoints):
                raise VignetteInputError(v["id"], f"{where}lesions", "give either target_lesions (with roles) or "
                                                                     "lesions (targets chosen at baseline), not both")
            raw_lesions = tp["lesions"]
            if not isinstance(raw_lesions, list) or not all(isinstance(x, dict) for x in raw_lesions):
                raise VignetteInputError(v["id"], f"{where}lesions", "must be a list of lesion objects")
            for j, t in enumerate(raw_lesions):
                role = str(t.get("role") or "").lower().replace("_", "-") or None
                if role not in (None, "target", "non-target", "new"):
                    raise VignetteInputError(v["id"], f"{where}lesions[{j}].role", f"{role!r} is not target / "
                                                                                    "non-target / new")
                entries.append((t, role, f"{where}lesions[{j}]."))
        for j, (t, role, lw) in enumerate(entries):
            check_keys(v, t, lw, _lesion_known, _LESION_SIZE_LIKE, "RECIST")
            nodal = _is_nodal(t)
            lid = str(t.get("id") or t.get("lesion_id") or t.get("name") or t.get("site") or f"T{j + 1}")
            if lid not in lesions:
                site = str(t.get("site") or t.get("location") or t.get("organ") or "unspecified")
                lesions[lid] = p.lesion(lid, site, nodal=nodal)
            body = lesions[lid]
            frags = None
            for base in _FRAG_KEYS:
                for suffix, unit in (("_mm", "mm"), ("_cm", "cm"), ("", None)):
                    if isinstance(t.get(f"{base}{suffix}"), list):
                        frags = [_mm(v, f"{lw}{base}{suffix}", x, unit) for x in t[f"{base}{suffix}"]]
            size: Any = None
            if frags is not None:
                if any(not isinstance(f, Decimal) for f in frags):
                    raise VignetteInputError(v["id"], f"{lw}fragments", "every fragment needs a measured size")
                size = sum(frags, Decimal(0))  # split lesion: fragment diameters are added (criteria.md §2.3)
            if size is None and nodal:
                size = _size_field(v, t, lw, _SA_KEYS)
            if size is None:
                size = _size_field(v, t, lw, _LD_KEYS)
            reported_as = str(t.get("reported_as") or t.get("status") or "").lower()
            kwargs: dict[str, Any] = {"role": role}
            if size in (None, "ne"):
                if "too small" in reported_as:
                    size = "too_small"
                elif re.search(r"disappear|resolved|no longer (?:seen|visible)", reported_as):
                    size = Decimal(0)
                elif size is None and not re.search(r"not (?:assessed|imaged|evaluated|measured|seen|done)|missing|"
                                                    r"\bne\b|unevaluable", reported_as):
                    raise VignetteInputError(v["id"], f"{lw}ld_mm", "target lesion without a size (give ld_mm / "
                                                                     "short_axis_mm, or null with reported_as 'not "
                                                                     "assessed')")
            if size == "too_small":
                kwargs["too_small"] = True
            elif size in (None, "ne"):
                kwargs["not_assessed"] = True
            elif nodal:
                kwargs["short_axis_mm"] = size
                ld = _size_field(v, t, lw, _LD_KEYS)
                kwargs["longest_mm"] = ld if isinstance(ld, Decimal) else size
            else:
                kwargs["longest_mm"] = size
            results.append(p.tumor_size(body, when, **kwargs))
        nt_key = next((k for k in ("non_target", "non_target_response", "non_target_status", "non_target_lesions")
                       if k in tp), None)
        nt = _non_target_value(v, tp[nt_key], f"{where}{nt_key}") if nt_key else None
        if nt is not None:
            results.append(p.observation(codes.NON_TARGET_RESPONSE, when, value_code=nt, category="imaging",
                                         note=tp.get("non_target_details")))
        nl_key = next((k for k in ("new_lesions", "new_lesion") if k in tp), None)
        nl = _new_lesion_value(v, tp[nl_key], f"{where}{nl_key}") if nl_key else None
        if nl is not None:
            results.append(p.observation(codes.NEW_LESION, when, value_code=("http://remission-cds.org/fhir/"
                                         "CodeSystem/criteria-inputs", nl), category="imaging"))
        p.report(when, results=results, conclusion=None)
    for when, overall in reported:
        obs = p.observation(codes.TIMEPOINT_RESPONSE, when, value_code=overall, category="imaging")
        p.report(when, results=[obs])
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
