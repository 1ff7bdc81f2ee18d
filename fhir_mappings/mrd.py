"""MRD results (ALL, CLL, AML) from FHIR, and the ALL MRD scheme chosen from the record.

No LOINC code is verified for ALL / CLL / AML MRD (codes.md §3.7: "Gap. The service needs a configurable
local-code table plus text rules"), so an MRD result is read from:

1. Observations coded with the project's code ``LOCAL|mrd-result`` or a code configured for the input ``mrd``
   (``options["local_codes"]["mrd"]``). The result is ``valueQuantity`` (level in ``%``, as a fraction ``1`` /
   ``{fraction}``, or ``{cells}/10*6{cells}`` per million), ``valueCodeableConcept`` (SNOMED CT Detected / Not
   detected / Positive / Negative, or ``LOCAL|mrd-positive`` / ``LOCAL|mrd-negative``), ``valueString`` free text
   (``"MRD negative (<10^-5)"``, ``"0.02 %"``, ``"not detected at sensitivity 1x10^-6"``), or
   ``interpretation`` (v3 POS/NEG/DET/ND). Components carry the level (``LOCAL|mrd-level``), the sensitivity / LOD
   (``LOCAL|mrd-sensitivity``), the limit of quantification (``LOCAL|mrd-loq``), the number of PCR markers
   (``LOCAL|mrd-markers``) and the protocol time point (``LOCAL|mrd-timepoint``).
2. When the record holds no such Observation: the text of immunophenotyping / bone-marrow DiagnosticReports
   (LOINC 101119-6, 48807-2, 33721-2) in the sentences that name MRD.

Method from ``Observation.method`` (text or display, or ``LOCAL|mrd-flow`` / ``mrd-ngf`` / ``mrd-pcr`` /
``mrd-ngs``); sample from ``bodySite`` / ``specimen`` (SNOMED CT bone marrow / blood, or words). Time point from the
component, the Observation's own label (code text), its note, or - when none names it - derived from the date
relative to the start of induction (``LOCAL|induction-start`` Observation, or the earliest induction medication).

Scheme choice for ALL (documented in docs/fhir-inputs-mrd.md; the card notes say which rule applied):

* relapse (Condition in relapse - ICD-10-CM C91.02, clinicalStatus relapse - or a result labelled relapse):
  paediatric relapse consensus for a child, adult terminology for an adult;
* adult (age >= ``options["all_mrd_adult_age"]``, default 18, at the latest MRD date): adult consensus terminology;
* child: the protocol named in the record (``LOCAL|treatment-protocol`` Observation, CarePlan / PlanDefinition /
  ResearchStudy title, MedicationRequest text, or an MRD result's note) - COG or AIEOP-BFM (version 2000/2009);
  else ``options["all_mrd_protocol"]``; else the protocol's time points (day 15/33/78, TP1/TP2 -> AIEOP-BFM; day
  8/29 -> COG); else COG (end-of-induction rule). The AIEOP-BFM version comes from the record, else
  ``options["aieop_bfm_protocol"]``, else the engine default (ALL 2009).
* no birth date: the protocol or time points decide as for a child; if nothing does, the adult terminology (its
  0.01 % rule needs no time point) with a note.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from fhir_mappings.labs import lab_series, local_codes, report_text, reports
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    parse_date,
    quantity,
    ref_of,
)
from fhir_mappings.routing import RoutedCancer
from fhir_mappings.units import PERCENT
from rules import mrd as engine
from rules.mrd import Method, MrdInputs, MrdResult, Sample, Scheme

# --- codes -------------------------------------------------------------------------------------------
MRD_RESULT = f"{LOCAL}|mrd-result"
MRD_LEVEL = f"{LOCAL}|mrd-level"
MRD_SENSITIVITY = f"{LOCAL}|mrd-sensitivity"
MRD_LOD = f"{LOCAL}|mrd-lod"                  # alias (the ELN mapper's name for the same component)
MRD_LOQ = f"{LOCAL}|mrd-loq"
MRD_MARKERS = f"{LOCAL}|mrd-markers"
MRD_TIMEPOINT = f"{LOCAL}|mrd-timepoint"
MRD_POSITIVE = f"{LOCAL}|mrd-positive"
MRD_NEGATIVE = f"{LOCAL}|mrd-negative"
TREATMENT_PROTOCOL = f"{LOCAL}|treatment-protocol"
INDUCTION_START = f"{LOCAL}|induction-start"

METHOD_CODES = {f"{LOCAL}|mrd-flow": Method.FLOW, f"{LOCAL}|mrd-ngf": Method.NGF, f"{LOCAL}|mrd-pcr": Method.PCR,
                f"{LOCAL}|mrd-ngs": Method.NGS}

DETECTED = {f"{SNOMED}|260373001", f"{SNOMED}|10828004", MRD_POSITIVE,
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation|POS",
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation|DET"}
NOT_DETECTED = {f"{SNOMED}|260415000", f"{SNOMED}|260385009", MRD_NEGATIVE,
                "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation|NEG",
                "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation|ND"}

MARROW_SITE = {f"{SNOMED}|14016003", f"{SNOMED}|119359002"}
BLOOD_SITE = {f"{SNOMED}|87612001", f"{SNOMED}|119297000"}

MRD_REPORT_CODES = {f"{LOINC}|101119-6", f"{LOINC}|48807-2", f"{LOINC}|33721-2"}
# Other tests on a relapse marrow (relapse scheme only): marrow blasts by morphology (codes.md §3.2, grade A / C)
MARROW_BLASTS = (f"{LOINC}|11150-0", f"{LOINC}|77147-7")

OBSERVATION_CODES = (MRD_RESULT, TREATMENT_PROTOCOL, INDUCTION_START) + MARROW_BLASTS

ADULT_AGE = 18
INDUCTION_DRUGS = ("vincristine", "dexamethasone", "prednisone", "prednisolone", "asparaginase", "pegaspargase",
                   "daunorubicin", "doxorubicin", "idarubicin", "hyper-cvad", "blinatumomab", "imatinib",
                   "dasatinib", "ponatinib")

# Protocol time point windows in days from induction start (day 1 = first day of induction) [I]
WINDOWS = {
    "COG": ((8, 6, 10), (29, 24, 36)),
    "AIEOP-BFM": ((15, 13, 17), (33, 29, 40), (78, 70, 86)),
}


def items(value: Any) -> list:
    """A FHIR array element as a list (anything else - a string, a number - as empty): never raises."""
    return value if isinstance(value, list) else []


def dig(value: Any, *path: str) -> Any:
    """value[path0][path1]... through dicts only; None when any step is not a dict."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- text rules --------------------------------------------------------------------------------------
_SUP = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def _normalise_text(text: str) -> str:
    t = re.sub(r"([⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: "^" + m.group(1).translate(_SUP), text)
    t = t.replace("×", "x").replace("−", "-").replace("–", "-").replace("\u2009", " ").replace("\u00a0", " ")
    t = re.sub(r"(?<=\d)[ ,](?=\d{3}\b)", "", t)      # 10 000 / 10,000 -> 10000
    return t.lower()


_NUM = r"(\d+(?:\.\d+)?)"
_PATTERNS = (
    ("sci", re.compile(_NUM + r"\s*(?:x|\*)\s*10\s*(?:\^|\*\*)?\s*(-\s*\d+)")),
    ("e", re.compile(_NUM + r"\s*e\s*(-\d+)")),
    ("pow", re.compile(r"(?<![\d.x*])\s*()10\s*(?:\^|\*\*)\s*(-\s*\d+)")),
    ("pct", re.compile(_NUM + r"\s*%()")),
    ("one_in", re.compile(r"\b1\s*(?:in|:|/)\s*(\d{3,})\b()")),
    ("per_million", re.compile(_NUM + r"\s*(?:clonal |leukaemic |leukemic |cll |malignant )?(?:cells? )?"
                               r"(?:per|/)\s*(?:1\s*)?(?:million|10\^6)()")),
)


def _fraction(kind: str, a: str, b: str) -> Decimal | None:
    try:
        if kind in ("sci", "e"):
            return Decimal(a) * Decimal(10) ** int(b.replace(" ", ""))
        if kind == "pow":
            return Decimal(10) ** int(b.replace(" ", ""))
        if kind == "pct":
            return Decimal(a) / 100
        if kind == "one_in":
            n = Decimal(a)
            return Decimal(1) / n if n > 0 else None
        if kind == "per_million":
            return Decimal(a) / Decimal(1000000)
    except (InvalidOperation, ValueError):
        return None
    return None


_NEG = re.compile(r"\b(not detected|not detectable|undetect\w*|negative|no (?:clonotype|clonal|residual|mrd|"
                  r"detectable|evidence|leuk\w+ cells|abnormal|cll cells|blasts)(?:[a-z ]{0,40}?(?:detected|"
                  r"identified|found|seen|present))?|absent|u-?mrd\s*\d?|below (?:the )?(?:limit of "
                  r"detection|lod|detection))")
_POS = re.compile(r"(?<!not )(?<!no )\b(detected|positive|detectable|present|persist\w*)\b")


@dataclass
class ParsedText:
    detected: bool | None = None
    level: Decimal | None = None
    sensitivity: Decimal | None = None
    loq: Decimal | None = None
    markers: int | None = None


def parse_mrd_text(text: str) -> ParsedText:
    """Detected / level / sensitivity / LOQ from MRD free text (fractions; exact Decimal)."""
    out = ParsedText()
    if not text:
        return out
    t = _normalise_text(text)
    m = re.search(r"(\d+)\s*(?:pcr |ig/tr |ig |tr )?markers?", t)
    if m:
        out.markers = int(m.group(1))
    neg = bool(_NEG.search(t))
    pos = bool(_POS.search(_NEG.sub(" ", t)))
    umrd = re.search(r"\bu-?mrd\s*(\d)\b", t)
    found: list[tuple[int, int, Decimal]] = []
    taken: list[tuple[int, int]] = []
    for kind, rx in _PATTERNS:
        for mm in rx.finditer(t):
            s, e = mm.start(), mm.end()
            if any(s < te and e > ts for ts, te in taken):
                continue
            v = _fraction(kind, mm.group(1), mm.group(2))
            if v is None:
                continue
            taken.append((s, e))
            found.append((s, e, v))
    found.sort()
    levels: list[Decimal] = []
    for s, e, v in found:
        before = t[max(0, s - 40):s]
        if re.search(r"(loq|quantif\w*)[^.;]*$", before):
            out.loq = v
        elif re.search(r"(sensitivity|lod|limit of detection|detection limit|level of|"
                       r"assay limit)[^.;]*$", before):
            out.sensitivity = v
        elif re.search(r"<\s*=?\s*$", before) or re.search(r"(below|less than|under)\s*$", before):
            if pos and not neg:
                out.loq = v
            else:
                out.sensitivity = v
        else:
            levels.append(v)
    if umrd and out.sensitivity is None:
        out.sensitivity = Decimal(10) ** -int(umrd.group(1))
    if levels and not neg:
        out.detected, out.level = True, levels[0]
    elif neg and not pos:
        out.detected = False
        if levels and out.sensitivity is None:
            out.sensitivity = levels[0]   # "negative at 10^-5" without a keyword
    elif pos and not neg:
        out.detected = True
        if levels:
            out.level = levels[0]
    elif levels:
        if all(v == 0 for v in levels):
            out.detected = False
        else:
            out.detected, out.level = True, levels[0]
    return out


def method_of(text: str) -> Method:
    t = text.lower()
    if re.search(r"\bngf\b|next[- ]generation flow|euroflow", t):
        return Method.NGF
    if re.search(r"\bngs\b|clonoseq|sequencing|next[- ]generation seq", t):
        return Method.NGS
    if re.search(r"pcr|\baso\b|ig/tr|rq-?pcr", t):
        return Method.PCR
    if re.search(r"flow|\bmfc\b|\bfcm\b|colou?r|cytometr|immunophenotyp", t):
        return Method.FLOW
    return Method.OTHER


def sample_of(text: str) -> Sample | None:
    t = text.lower()
    if re.search(r"marrow|\bbm\b|aspirate", t):
        return Sample.BM
    if re.search(r"peripheral blood|\bpb\b|\bblood\b", t):
        return Sample.PB
    return None


# --- reading Observations -----------------------------------------------------------------------------
def _components(obs: Resource, key: str) -> list[dict]:
    return [c for c in items(obs.get("component")) if isinstance(c, dict) and key in concept_keys(c.get("code"))]


def _text_of(value_holder: dict) -> str:
    if isinstance(value_holder.get("valueString"), str):
        return value_holder["valueString"]
    return concept_text(value_holder.get("valueCodeableConcept"))


def _notes(res: Resource) -> str:
    return " ".join(n["text"] for n in items(res.get("note")) if isinstance(n, dict) and isinstance(n.get("text"), str))


class _UnitProblem(ValueError):
    pass


PCT_UNITS = {"%", "percent", "pct"}
FRACTION_UNITS = {"1", "{fraction}", "{ratio}", "{fraction of cells}", "{cells}/{cells}", "fraction"}
PER_MILLION_UNITS = {"{cells}/10*6{cells}", "/10*6", "{clonal cells}/10*6{cells}", "10*-6", "/10*6{cells}",
                     "ppm", "per million"}
REJECTED_UNITS = {
    "10*9/L": "an absolute count is not an MRD level; send the level as % or as a fraction (unit 1)",
    "/uL": "an absolute count is not an MRD level; send the level as % or as a fraction (unit 1)",
    "10*3/uL": "an absolute count is not an MRD level; send the level as % or as a fraction (unit 1)",
    "{copies}/mL": "a copy number is not an MRD level; send the level normalised to % or as a fraction",
}


def to_fraction(value: Decimal, unit: str | None) -> Decimal:
    """An MRD level or sensitivity in %, fraction or per million -> fraction (exact); raises _UnitProblem."""
    u = (unit or "").strip()
    if u in PCT_UNITS:
        return value / 100
    if u in FRACTION_UNITS:
        if value > 1:
            raise _UnitProblem(f"a fraction above 1 ({value}) cannot be an MRD level; was the unit meant to be %?")
        return value
    if u in PER_MILLION_UNITS:
        return value / Decimal(1000000)
    if u in REJECTED_UNITS:
        raise _UnitProblem(REJECTED_UNITS[u])
    if not u:
        raise _UnitProblem("no unit: an MRD level must say whether it is % or a fraction (unit 1)")
    raise _UnitProblem(f"unit '{u}' is not accepted for an MRD level; expected %, 1 ({{fraction}}) or "
                       "{cells}/10*6{cells}")


def _quantity_fraction(record: PatientRecord, res: Resource, q: Any, what: str,
                       default_unit: str | None = None) -> tuple[Decimal | None, str | None]:
    v, unit, comp = quantity(q)
    unit = unit or default_unit
    if v is None:
        return None, None
    try:
        f = to_fraction(v, unit)
    except _UnitProblem as exc:
        record.issue(res, f"MRD {what} skipped", str(exc))
        return None, None
    if f < 0:
        record.issue(res, f"MRD {what} skipped", "negative value")
        return None, None
    return f, comp


def _int_component(obs: Resource, key: str) -> int | None:
    for c in _components(obs, key):
        if isinstance(c.get("valueInteger"), int):
            return c["valueInteger"]
        v, _, _ = quantity(c.get("valueQuantity"))
        if v is not None and v == v.to_integral_value():
            return int(v)
    return None


def _sample(record: PatientRecord, obs: Resource) -> Sample | None:
    holders = [obs.get("bodySite")]
    spec = record.get(obs.get("specimen"))
    if spec is not None:
        holders.append(spec.get("type"))
        coll = spec.get("collection")
        if isinstance(coll, dict):
            holders.append(coll.get("bodySite"))
    elif isinstance(obs.get("specimen"), dict) and isinstance(obs["specimen"].get("display"), str):
        holders.append({"text": obs["specimen"]["display"]})
    for h in holders:
        keys = concept_keys(h)
        if keys & MARROW_SITE:
            return Sample.BM
        if keys & BLOOD_SITE:
            return Sample.PB
        s = sample_of(concept_text(h))
        if s:
            return s
    return None


@dataclass
class RawMrd:
    """One MRD result with the labels still as text (the scheme decides what they mean)."""

    date: date
    method: Method
    detected: bool
    level: Decimal | None
    sensitivity: Decimal | None
    loq: Decimal | None
    markers: int | None
    sample: Sample | None
    label: str | None          # time point text as recorded
    text: str                  # every text of the result (protocol, sample and time point words)
    ref: str | None
    from_report: bool = False


def _timepoint_label(obs: Resource) -> str | None:
    for c in _components(obs, MRD_TIMEPOINT):
        t = _text_of(c)
        if t:
            return t
        for k in concept_keys(c.get("valueCodeableConcept")):
            return k.split("|", 1)[1]
    for t in (concept_text(obs.get("code")), _notes(obs)):
        if t and (engine.timepoint_day(t) is not None or re.search(r"relapse|induction|consolidation", t, re.I)):
            return t
    return None


def _read_observation(record: PatientRecord, obs: Resource, default_unit: str | None = None) -> RawMrd | None:
    d = effective_date(obs)
    if d is None:
        record.issue(obs, "MRD result skipped", "no date")
        return None
    method_text = " ".join(filter(None, [concept_text(obs.get("method")),
                                         " ".join(c["display"] for c in items(dig(obs, "method", "coding"))
                                                  if isinstance(c, dict) and isinstance(c.get("display"), str))]))
    method = next((m for k, m in METHOD_CODES.items() if k in concept_keys(obs.get("method"))), None)
    value_text = obs.get("valueString") if isinstance(obs.get("valueString"), str) else ""
    vc = obs.get("valueCodeableConcept")
    all_text = " ".join(filter(None, [concept_text(obs.get("code")), method_text, value_text, concept_text(vc),
                                      _notes(obs), " ".join(_text_of(c) for c in items(obs.get("component"))
                                                             if isinstance(c, dict))]))
    if method is None:
        method = method_of(method_text) if method_text else Method.OTHER
        if method is Method.OTHER:
            method = method_of(" ".join([concept_text(obs.get("code")), value_text, _notes(obs)]))

    level = sens = loq = None
    detected: bool | None = None
    comparator = None
    for c in _components(obs, MRD_LEVEL):
        level, comparator = _quantity_fraction(record, obs, c.get("valueQuantity"), "level")
    for c in _components(obs, MRD_SENSITIVITY) + _components(obs, MRD_LOD):
        sens, _ = _quantity_fraction(record, obs, c.get("valueQuantity"), "sensitivity")
        if sens is None and _text_of(c):
            sens = parse_mrd_text("sensitivity " + _text_of(c)).sensitivity
    for c in _components(obs, MRD_LOQ):
        loq, _ = _quantity_fraction(record, obs, c.get("valueQuantity"), "limit of quantification")
    markers = _int_component(obs, MRD_MARKERS)

    if "valueQuantity" in obs:
        v, unit, comp = quantity(obs.get("valueQuantity"))
        if v is not None:
            f, comparator = _quantity_fraction(record, obs, obs["valueQuantity"], "level", default_unit)
            if f is None:
                return None
            level = f
    coded = concept_keys(vc) | set().union(*(concept_keys(i) for i in items(obs.get("interpretation"))))
    if coded & DETECTED:
        detected = True
    elif coded & NOT_DETECTED:
        detected = False
    parsed = parse_mrd_text(" ".join(filter(None, [value_text, concept_text(vc)])))
    if parsed.detected is None and parsed.sensitivity is None and parsed.level is None:
        parsed = parse_mrd_text(" ".join(filter(None, [value_text, concept_text(vc), _notes(obs)])))
    if detected is None:
        detected = parsed.detected
    if level is None and parsed.level is not None:
        level = parsed.level
    sens = sens if sens is not None else parsed.sensitivity
    loq = loq if loq is not None else parsed.loq
    if markers is None:
        markers = parse_mrd_text(all_text).markers
    if level is not None and comparator in ("<", "<="):
        # "< x": below the assay's limit - not detected at x, unless the result says detected (then x is the LOQ)
        if detected:
            loq, level = level, None
        else:
            detected, sens, level = False, sens if sens is not None else level, None
    elif level is not None and detected is None:
        detected = level > 0
    if level is not None and level == 0:
        detected, level = False, None
    if detected is False:
        level = None
    if detected is None and isinstance(obs.get("valueBoolean"), bool):
        detected = obs["valueBoolean"]   # valueBoolean true = MRD detected
    if detected is None:
        record.issue(obs, "MRD result skipped", "no result: neither a level nor detected / not detected")
        return None
    return RawMrd(d, method, detected, level, sens, loq, markers, _sample(record, obs) or sample_of(all_text),
                  _timepoint_label(obs), all_text, ref_of(obs))


def _sentences_about_mrd(text: str) -> list[str]:
    parts = re.split(r"(?<=[.;\n])\s+", text)
    return [p for p in parts if re.search(r"\bmrd\b|residual disease|\bu-?mrd\d?\b", p, re.I)]


def _read_report(record: PatientRecord, rep: Resource) -> RawMrd | None:
    d = effective_date(rep)
    text = report_text(rep)
    if d is None or not text:
        return None
    sentences = _sentences_about_mrd(text)
    if not sentences:
        return None
    about = " ".join(sentences)
    parsed = parse_mrd_text(about)
    if parsed.detected is None:
        record.issue(rep, "MRD report text not used", "no MRD result could be read from the text")
        return None
    return RawMrd(d, method_of(text), parsed.detected, parsed.level if parsed.detected else None,
                  parsed.sensitivity, parsed.loq, parsed.markers, sample_of(about) or sample_of(text),
                  text if engine.timepoint_day(text) is not None or re.search(r"relapse", text, re.I) else None,
                  text, ref_of(rep), from_report=True)


def _belongs_elsewhere(record: PatientRecord, obs: Resource, condition_ref: str | None) -> bool:
    """True when the Observation names (focus) another Condition than the one being assessed."""
    if not condition_ref:
        return False
    for f in items(obs.get("focus")):
        target = record.get(f)
        if target is not None and target.get("resourceType") == "Condition" and ref_of(target) != condition_ref:
            return True
    return False


def read_mrd(record: PatientRecord, options: Mapping[str, Any] | None = None,
             condition_ref: str | None = None) -> list[RawMrd]:
    """Every usable MRD result in the record, in date order (Observations first; report text as fallback)."""
    configured = local_codes(options, input_name="mrd")
    keys = [MRD_RESULT] + [k for k, _ in configured]
    default_units = {k: u for k, u in configured if u}
    out = []
    for obs in record.with_codes(keys, "Observation"):
        if _belongs_elsewhere(record, obs, condition_ref):
            continue
        r = _read_observation(record, obs, next((u for k, u in default_units.items()
                                                 if k in concept_keys(obs.get("code"))), None))
        if r is not None:
            out.append(r)
    if not out:
        for rep in reports(record):
            if concept_keys(rep.get("code")) & MRD_REPORT_CODES or re.search(
                    r"\bmrd\b|residual disease", report_text(rep), re.I):
                r = _read_report(record, rep)
                if r is not None:
                    out.append(r)
    return sorted(out, key=lambda r: (r.date, r.ref or ""))


def to_result(raw: RawMrd, sample: Sample, timepoint: str | None) -> MrdResult:
    return MrdResult(date=raw.date, method=raw.method, detected=raw.detected,
                     level=raw.level if raw.detected else None, sensitivity=raw.sensitivity, sample=sample,
                     timepoint=timepoint, loq=raw.loq if raw.detected and raw.level is None else None,
                     markers=raw.markers, ref=raw.ref)


def simple_results(raws: Iterable[RawMrd], default_sample: Sample = Sample.BM) -> tuple[list[MrdResult], list[str]]:
    """Results for schemes without protocol time points (CLL, AML, adult ALL): sample as recorded, else default."""
    notes = []
    out = []
    for r in raws:
        if r.sample is None:
            notes.append(f"MRD sample of {r.date.isoformat()} not recorded; taken as {default_sample.value}.")
        out.append(to_result(r, r.sample or default_sample, r.label))
    return out, notes


# --- protocol, induction start, age --------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    family: str | None         # "COG" / "AIEOP-BFM" / "adult" / None
    version: str | None        # AIEOP-BFM "2000" / "2009"
    source: str                # where it was found (for the card note)


def parse_protocol(text: str) -> tuple[str | None, str | None]:
    t = text.lower()
    version = None
    if re.search(r"aieop|bfm", t):
        m = re.search(r"\b(2000|2009|2017)\b", t)
        version = m.group(1) if m and m.group(1) in ("2000", "2009") else None
        return "AIEOP-BFM", version
    if re.search(r"\bcog\b|children'?s oncology group|\baall\d", t):
        return "COG", None
    if re.search(r"graall|gmall|ukall ?14|hyper-?cvad|pethema|\badult\b|e1910|calgb", t):
        return "adult", None
    return None, None


def protocol_from_record(record: PatientRecord, raws: Iterable[RawMrd]) -> Protocol | None:
    for obs in record.with_codes([TREATMENT_PROTOCOL], "Observation"):
        fam, ver = parse_protocol(" ".join([_text_of(obs), _notes(obs)]))
        if fam:
            return Protocol(fam, ver, f"treatment protocol recorded ({ref_of(obs) or 'Observation'})")
    for rtype in ("CarePlan", "PlanDefinition", "ResearchStudy", "MedicationRequest", "MedicationStatement"):
        for res in record.of_type(rtype):
            parts = [res.get(k) for k in ("title", "description", "name") if isinstance(res.get(k), str)]
            parts.append(concept_text(res.get("medicationCodeableConcept")))
            parts.append(_notes(res))
            for ic in items(res.get("instantiatesCanonical")):
                if isinstance(ic, str):
                    parts.append(ic)
            fam, ver = parse_protocol(" ".join(p for p in parts if p))
            if fam:
                return Protocol(fam, ver, f"{rtype} names the protocol ({ref_of(res) or rtype})")
    for r in raws:
        fam, ver = parse_protocol(r.text)
        if fam:
            return Protocol(fam, ver, f"the MRD result names the protocol ({r.ref or 'report'})")
    return None


def _med_start(res: Resource) -> date | None:
    for di in items(res.get("dosageInstruction")):
        if isinstance(di, dict):
            bp = dig(di, "timing", "repeat", "boundsPeriod")
            if isinstance(bp, dict) and parse_date(bp.get("start")):
                return parse_date(bp.get("start"))
    return effective_date(res)


def induction_start(record: PatientRecord) -> tuple[date | None, str | None]:
    for obs in record.with_codes([INDUCTION_START], "Observation"):
        d = parse_date(obs.get("valueDateTime")) or (parse_date(obs.get("valuePeriod", {}).get("start"))
                                                     if isinstance(obs.get("valuePeriod"), dict) else None)
        if d:
            return d, ref_of(obs)
    cands: list[tuple[date, str | None]] = []
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "CarePlan"):
        for res in record.of_type(rtype):
            text = " ".join(filter(None, [concept_text(res.get("medicationCodeableConcept")), _notes(res),
                                          res.get("title") if isinstance(res.get("title"), str) else None,
                                          res.get("description") if isinstance(res.get("description"), str)
                                          else None])).lower()
            if rtype == "CarePlan":
                per = res.get("period") if isinstance(res.get("period"), dict) else {}
                d = parse_date(per.get("start"))
            else:
                d = _med_start(res)
            if d and ("induction" in text or any(w in text for w in INDUCTION_DRUGS)):
                cands.append((d, ref_of(res)))
    if not cands:
        return None, None
    return min(cands, key=lambda c: c[0])


def birth_date(record: PatientRecord) -> date | None:
    pats = record.of_type("Patient")
    if record.patient_id:
        pats = [p for p in pats if p.get("id") == record.patient_id] or pats
    return parse_date(pats[0].get("birthDate")) if pats else None


def age_on(born: date, when: date) -> int:
    return when.year - born.year - ((when.month, when.day) < (born.month, born.day))


# --- ALL scheme choice and time points ------------------------------------------------------------------
def _label_day(label: str | None) -> int | None:
    return engine.timepoint_day(label)


def _family_from_days(days: Iterable[int]) -> str | None:
    ds = set(days)
    if ds & {15, 33, 78}:
        return "AIEOP-BFM"
    if ds & {8, 29}:
        return "COG"
    return None


def _derive_day(d: date, start: date, family: str | None) -> int | None:
    n = (d - start).days + 1
    families = [family] if family in WINDOWS else list(WINDOWS)
    for fam in families:
        for day, lo, hi in WINDOWS[fam]:
            if lo <= n <= hi:
                return day
    return None


def _label_for(raw: RawMrd, family: str | None, derived: int | None, start: date | None) -> str | None:
    label = raw.label
    day = _label_day(label)
    if family == "AIEOP-BFM" and label and day == 29 and not re.search(r"\bday\s*-?\s*29\b", label, re.I):
        # "end of induction" in AIEOP-BFM is TP1 = day 33 (COG reads the same words as day 29)
        return f"day 33 (end of induction, AIEOP-BFM TP1; recorded as '{label}')"
    if family == "AIEOP-BFM" and label and day is None and re.search(r"consolidation", label, re.I):
        return f"day 78 (end of consolidation, AIEOP-BFM TP2; recorded as '{label}')"
    if day is not None or derived is None or start is None:
        return label
    return f"day {derived} (derived: {(raw.date - start).days + 1} days from induction start {start.isoformat()})"


@dataclass
class AllMrdMapping:
    inputs: MrdInputs | None
    protocol_kw: str | None = None
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _is_relapse_text(text: str | None) -> bool:
    return bool(text and re.search(r"relapse", text, re.I) and not re.search(r"no relapse|relapse-free", text, re.I))


def map_all_mrd(record: PatientRecord, routed: RoutedCancer, as_of: date,
                options: Mapping[str, Any] | None = None) -> AllMrdMapping:
    options = options or {}
    raws = [r for r in read_mrd(record, options, routed.condition_ref) if r.date <= as_of]
    if not raws:
        return AllMrdMapping(None, missing=["MRD result (flow, PCR or NGS) - none in the record (project code "
                                            "mrd-result or a configured local code; codes.md §3.7)"])
    notes: list[str] = []
    last = raws[-1].date
    born = birth_date(record)
    adult_age = int(options.get("all_mrd_adult_age") or ADULT_AGE)
    age = age_on(born, last) if born else None
    proto = protocol_from_record(record, raws)
    cfg = options.get("all_mrd_protocol")
    if proto is None and isinstance(cfg, str) and cfg:
        fam, ver = parse_protocol(cfg)
        if fam:
            proto = Protocol(fam, ver, "service configuration (all_mrd_protocol)")
    start, start_ref = induction_start(record)

    relapse = routed.remission_state == "relapse" or any(_is_relapse_text(r.label) for r in raws)
    paediatric: bool | None = None if age is None else age < adult_age
    if paediatric is None and proto and proto.family in ("COG", "AIEOP-BFM"):
        paediatric = True
    if paediatric is None and proto and proto.family == "adult":
        paediatric = False

    label_days = [d for d in (_label_day(r.label) for r in raws) if d is not None]
    family = proto.family if proto and proto.family in ("COG", "AIEOP-BFM") else None
    why_family = proto.source if family else ""
    if family is None:
        family = _family_from_days(label_days)
        why_family = "the time points recorded with the MRD results" if family else ""
    if family is None and start is not None:
        derived = [d for d in (_derive_day(r.date, start, None) for r in raws) if d is not None]
        family = _family_from_days(derived)
        why_family = f"the MRD dates relative to induction start {start.isoformat()}" if family else ""
    if paediatric is None and family is not None:
        paediatric = True

    if relapse and paediatric:
        scheme = Scheme.ALL_RELAPSE
        why = "ALL in relapse (Condition or result label) in a child: paediatric relapse consensus"
    elif paediatric is False or (relapse and paediatric is None):
        scheme = Scheme.ADULT_ALL
        why = (f"age {age} at the latest MRD result (adult from {adult_age})" if age is not None
               else f"protocol ({proto.source})" if proto and proto.family == "adult"
               else "birth date not recorded and no paediatric protocol or time point")
        why = "adult ALL consensus terminology: " + why
    elif paediatric is None:
        scheme = Scheme.ADULT_ALL
        why = ("adult ALL consensus terminology: the record has no birth date and names no protocol or protocol "
               "time point (its 0.01 % rule needs none)")
    else:
        if family is None:
            family, why_family = "COG", "no protocol or protocol time point recorded (COG end-of-induction rule)"
        scheme = Scheme.COG if family == "COG" else Scheme.AIEOP_BFM
        why = f"{family} chosen from {why_family}" + (f" (age {age})" if age is not None else "")
    notes.append(f"MRD scheme: {why}.")

    results: list[MrdResult] = []
    others: list[MrdResult] = []
    for r in raws:
        derived = _derive_day(r.date, start, family) if start and scheme in (Scheme.COG, Scheme.AIEOP_BFM) else None
        label = _label_for(r, family if scheme in (Scheme.COG, Scheme.AIEOP_BFM) else None, derived, start)
        if derived is not None and _label_day(r.label) is None:
            notes.append(f"MRD of {r.date.isoformat()}: time point derived from the induction start "
                         f"{start.isoformat()} ({start_ref or 'medication'}) as day {derived}.")
        sample = r.sample
        if sample is None:
            day = _label_day(label)
            sample = Sample.PB if (scheme is Scheme.COG and day == 8) else Sample.BM
            notes.append(f"MRD sample of {r.date.isoformat()} not recorded; taken as {sample.value} (the protocol's "
                         "specimen for this time point).")
        results.append(to_result(r, sample, label))

    if scheme is Scheme.ALL_RELAPSE:
        results, others = _split_relapse(record, results, options)

    protocol_in_record = None
    protocol_kw = None
    if scheme is Scheme.AIEOP_BFM:
        if proto and proto.family == "AIEOP-BFM" and proto.version:
            protocol_in_record = proto.version
        else:
            cfg_v = options.get("aieop_bfm_protocol")
            if cfg_v:
                protocol_kw = str(cfg_v)
                notes.append(f"AIEOP-BFM version not in the record; configured version ALL {protocol_kw} used.")
            else:
                notes.append(f"AIEOP-BFM version not in the record; engine default ALL "
                             f"{engine.DEFAULT_AIEOP_BFM_PROTOCOL} used (set aieop_bfm_protocol to change).")
    text = (routed.condition_text or "").lower()
    b_lineage = not re.search(r"\bt-all\b|t-cell|t-lymphoblastic|t lymphoblastic", text)
    inputs = MrdInputs(scheme=scheme, results=tuple(results), protocol=protocol_in_record,
                       other_tests=tuple(others), b_lineage=b_lineage)
    return AllMrdMapping(inputs, protocol_kw, notes)


_METHOD_RANK = {Method.FLOW: 0, Method.NGF: 1, Method.PCR: 2, Method.NGS: 3, Method.OTHER: 4}


def _split_relapse(record: PatientRecord, results: list[MrdResult],
                   options: Mapping[str, Any]) -> tuple[list[MrdResult], list[MrdResult]]:
    """Relapse scheme: per date, the marrow MRD result of the preferred method (flow > NGF > PCR > NGS) is the
    MRD result; the other MRD results of that date and marrow blasts by morphology are the 'other tests'."""
    by_date: dict[date, list[MrdResult]] = {}
    for r in results:
        by_date.setdefault(r.date, []).append(r)
    main, others = [], []
    for d, rs in sorted(by_date.items()):
        bm = sorted([r for r in rs if r.sample is Sample.BM], key=lambda r: _METHOD_RANK[r.method]) or \
            sorted(rs, key=lambda r: _METHOD_RANK[r.method])
        main.append(bm[0])
        others.extend(r for r in rs if r is not bm[0])
    dates = {r.date for r in main}
    for lv in lab_series(record, MARROW_BLASTS, PERCENT, input_name="marrow_blasts", options=options,
                         what="marrow blasts"):
        if lv.date in dates and lv.value <= 100:
            others.append(MrdResult(lv.date, Method.OTHER, lv.value > 0, lv.value / 100 if lv.value > 0 else None,
                                    sample=Sample.BM, timepoint="morphology", ref=lv.ref))
    return main, others
