"""Dated imaging inputs shared by the iRECIST, mRECIST and Choi mappers (docs/fhir-inputs-irecist.md,
docs/fhir-inputs-mrecist.md, docs/fhir-inputs-choi.md).

Everything is read the way the RECIST 1.1 mapper reads it (fhir_mappings/recist.py): mCODE TumorSize
Observations (LOINC 21889-1) tracked by their BodyStructure identifier, grouped into time points by the imaging
DiagnosticReport that lists them, with the project's status Observations (non-target response, new lesion).
On top of that each lesion reading may carry extra components (viable diameter, mean attenuation, new-lesion
category) and a time point may carry a reported sum when the per-lesion measurements are not in the record.

Codes with no standard equivalent live in the project's code system (``fhir_mappings.record.LOCAL``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings import codes
from fhir_mappings.labs import local_codes
from fhir_mappings.recist import _is_nodal, _lesion_key, _organ, _timepoint_dates
from fhir_mappings.record import (
    LOCAL,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
)
from fhir_mappings.units import LENGTH_MM, UnitError, UnitSpec, normalise

# --- the project's codes for these families (docs/fhir-inputs-*.md) --------------------------------------
TARGET_SUM = f"{LOCAL}|recist-target-sum"              # Observation.valueQuantity mm: reported sum of target diameters
SUM_LONGEST_DIAMETERS = f"{LOCAL}|sum-longest-diameters"  # accepted alias of TARGET_SUM (Choi "SLD")
VIABLE_DIAMETER = f"{LOCAL}|viable-tumor-diameter"     # TumorSize component: arterially enhancing (viable) LD, mm
VIABLE_SUM = f"{LOCAL}|viable-tumor-sum"               # Observation: reported sum of viable diameters, mm
MEAN_ATTENUATION = f"{LOCAL}|mean-attenuation"         # TumorSize component or Observation: mean CT attenuation
NEW_LESION_CATEGORY = f"{LOCAL}|new-lesion-category"   # TumorSize component: NLT | NLNT (iRECIST)
EFFUSION = f"{LOCAL}|effusion-new-or-increased"        # Observation: valueBoolean (new / increasing effusion, ascites)
EFFUSION_CYTOLOGY = f"{LOCAL}|effusion-cytology"       # Observation: malignant | negative
INTRATUMORAL_NODULE = f"{LOCAL}|intratumoral-nodule"   # Observation: valueBoolean (new or growing nodule, Choi)
SYMPTOMATIC_DETERIORATION = f"{LOCAL}|symptomatic-deterioration"  # Observation: valueBoolean (Choi)

# v3 ObservationInterpretation: "significant change up" / "worse" mark a lesion or non-target disease that grew
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INCREASED = {f"{INTERPRETATION}|U", f"{INTERPRETATION}|W", f"{LOCAL}|increased"}

_YES = ("yes", "true", "present", "positive", "y", "1")


@dataclass(frozen=True)
class Reading:
    """One lesion on one date.  ``diameter_mm`` is the RECIST diameter (short axis for a node when given)."""

    diameter_mm: Decimal | None
    longest_mm: Decimal | None
    short_axis_mm: Decimal | None
    too_small: bool
    ref: str | None
    extra: Mapping[str, Decimal] = field(default_factory=dict)
    category: str | None = None     # NLT / NLNT as read by the radiologist
    increased: bool = False         # interpretation "significant change up" / "worse"


@dataclass
class Lesion:
    lesion_id: str
    nodal: bool = False
    organ: str | None = None
    location: str = ""
    role: str | None = None
    readings: dict[date, Reading] = field(default_factory=dict)

    @property
    def first_seen(self) -> date | None:
        return min(self.readings) if self.readings else None


@dataclass(frozen=True)
class Status:
    """A status Observation (non-target response, new lesion, effusion ...) on one date."""

    value: str                  # code or text, as written
    ref: str | None
    increased: bool = False
    boolean: bool | None = None

    @property
    def yes(self) -> bool:
        if self.boolean is not None:
            return self.boolean
        t = self.value.strip().lower()
        return t in _YES or t.startswith(("yes", "unequivocal", "new lesion"))


def _components(obs: Resource, keys: Iterable[str]) -> list[dict]:
    wanted = set(keys)
    return [c for c in obs.get("component") or () if isinstance(c, dict) and concept_keys(c.get("code")) & wanted]


def _read_mm(record: PatientRecord, obs: Resource, comp: dict, spec: UnitSpec, what: str) -> Decimal | None:
    v, unit, _ = quantity(comp.get("valueQuantity"))
    if v is None:
        return None
    try:
        value = normalise(v, unit, spec)
    except UnitError as exc:
        record.issue(obs, f"{what} skipped", str(exc))
        return None
    if value < 0 and spec is LENGTH_MM:
        record.issue(obs, f"{what} skipped", "negative diameter")
        return None
    return value


def _interpretations(res: Resource) -> list[dict]:
    """Observation.interpretation is a list of CodeableConcepts (a single one is tolerated)."""
    value = res.get("interpretation")
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict)]


def _increased(res: Resource) -> bool:
    for item in _interpretations(res):
        if concept_keys(item) & INCREASED or "increas" in concept_text(item).lower():
            return True
    return False


def read_tumor_size(record: PatientRecord, obs: Resource, nodal: bool,
                    extras: Mapping[str, tuple[tuple[str, ...], UnitSpec]]) -> Reading:
    """Diameters, extra components and flags of one TumorSize Observation (unit problems become issues)."""
    notes = " ".join(n.get("text", "") for n in obs.get("note") or () if isinstance(n, dict)).lower()
    too_small = "too small to measure" in notes or any(codes.TOO_SMALL in concept_keys(i)
                                                        for i in _interpretations(obs))
    longest = None
    for comp in _components(obs, (codes.LONGEST_DIMENSION,)):
        if codes.TOO_SMALL in concept_keys(comp.get("valueCodeableConcept")):
            too_small = True
            continue
        longest = _read_mm(record, obs, comp, LENGTH_MM, "tumour size")
        if longest is not None:
            break
    short = None
    for comp in _components(obs, (codes.SHORT_AXIS,)):
        short = _read_mm(record, obs, comp, LENGTH_MM, "tumour size")
        if short is not None:
            break
    if short is None and nodal:
        others = [v for v in (_read_mm(record, obs, c, LENGTH_MM, "tumour size")
                              for c in _components(obs, (codes.OTHER_DIMENSION,))) if v is not None]
        short = min(others) if others else None
    diameter = short if nodal and short is not None else longest
    extra: dict[str, Decimal] = {}
    for name, (keys, spec) in extras.items():
        for comp in _components(obs, keys):
            v = _read_mm(record, obs, comp, spec, name)
            if v is not None:
                extra[name] = v
                break
    category = None
    for comp in _components(obs, (NEW_LESION_CATEGORY,)):
        vc = comp.get("valueCodeableConcept")
        keys = sorted(concept_keys(vc))
        text = comp.get("valueString") if isinstance(comp.get("valueString"), str) else None
        category = (keys[0].split("|", 1)[1] if keys else None) or concept_text(vc) or text
    return Reading(diameter, longest, short, too_small, ref_of(obs), extra, category, _increased(obs))


ORGAN_WORDS = (
    ("lymph nodes", ("lymph node", "nodal", "node")), ("liver", ("liver", "hepatic", "segment")),
    ("lungs", ("lung", "pulmonary")), ("bone", ("bone", "vertebra", "rib", "pelvis", "femur", "sacrum")),
    ("adrenal glands", ("adrenal",)), ("kidneys", ("kidney", "renal")), ("brain", ("brain", "cerebral")),
    ("peritoneum", ("peritone", "omentum", "omental")), ("pleura", ("pleura",)), ("spleen", ("spleen", "splenic")),
    ("pancreas", ("pancrea",)), ("stomach", ("stomach", "gastric")), ("skin", ("skin", "subcutaneous")),
)


def organ_of(site: str | None) -> str | None:
    """The organ a lesion site names, for the per-organ limits ("liver segment 7" and "right hepatic lobe" are one
    organ, paired organs are one organ, all lymph nodes are one organ); unknown sites are kept as written."""
    if not site:
        return None
    t = site.strip().lower()
    for organ, words in ORGAN_WORDS:
        if any(w in t for w in words):
            return organ
    parts = [w for w in re.split(r"[\s,;]+", t) if w not in ("right", "left", "bilateral", "upper", "lower", "the")]
    return parts[0] if parts else t


ROLE_VALUES = {"target": "target", "non-target": "non-target", "nontarget": "non-target", "non target": "non-target",
               "new": "new"}


def collect_lesions(record: PatientRecord, tp_dates: Mapping[str, date],
                    extras: Mapping[str, tuple[tuple[str, ...], UnitSpec]] | None = None) -> dict[str, Lesion]:
    """Every tracked lesion with its readings by time-point date (TumorSize, LOINC 21889-1)."""
    lesions: dict[str, Lesion] = {}
    for obs in record.with_codes([codes.TUMOR_SIZE], "Observation"):
        try:
            _add_reading(record, obs, tp_dates, lesions, extras or {})
        except (TypeError, AttributeError, ValueError, KeyError):
            record.issue(obs, "tumour size skipped", "malformed resource (unexpected data shape)")
    return lesions


def _add_reading(record: PatientRecord, obs: Resource, tp_dates: Mapping[str, date], lesions: dict[str, Lesion],
                 extras: Mapping[str, tuple[tuple[str, ...], UnitSpec]]) -> None:
    d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
    if d is None:
        record.issue(obs, "tumour size skipped", "no date")
        return
    key, body = _lesion_key(obs, record)
    if not key:
        record.issue(obs, "tumour size skipped", "no lesion identifier (focus) or body site to track it by")
        return
    les = lesions.setdefault(key, Lesion(key))
    les.nodal = les.nodal or _is_nodal(obs, body)
    les.organ = les.organ or _organ(obs, body)
    for res, k in ((body, "location"), (obs, "bodySite")):
        if res and isinstance(res.get(k), dict):
            words = [concept_text(res[k])] + [c["display"] for c in res[k].get("coding") or ()
                                              if isinstance(c, dict) and isinstance(c.get("display"), str)]
            for w in words:
                if w and w.lower() not in les.location:
                    les.location += " " + w.lower()
    for comp in _components(obs, (codes.LESION_ROLE,)):
        vc = comp.get("valueCodeableConcept")
        for k in concept_keys(vc):
            les.role = ROLE_VALUES.get(k.split("|", 1)[1].lower(), les.role)
        if not concept_keys(vc) and concept_text(vc):
            les.role = ROLE_VALUES.get(concept_text(vc).lower(), les.role)
    les.readings[d] = read_tumor_size(record, obs, les.nodal, extras)


def statuses(record: PatientRecord, keys: Iterable[str], tp_dates: Mapping[str, date],
             what: str = "status observation") -> dict[date, Status]:
    """Coded / boolean / text status Observations by time-point date (the latest on a date wins)."""
    out: dict[date, Status] = {}
    for obs in record.with_codes(list(keys), "Observation"):
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, f"{what} skipped", "no date")
            continue
        try:
            status = _status(obs)
        except (TypeError, AttributeError, ValueError):
            status = None
        if status is None:
            record.issue(obs, f"{what} skipped", "no value")
        else:
            out[d] = status
    return out


def _status(obs: Resource) -> Status | None:
    if isinstance(obs.get("valueBoolean"), bool):
        return Status("yes" if obs["valueBoolean"] else "no", ref_of(obs), _increased(obs), obs["valueBoolean"])
    vc = obs.get("valueCodeableConcept")
    val = None
    for k in sorted(concept_keys(vc)):
        val = k.split("|", 1)[1]
    val = val or concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else None)
    return Status(val.strip(), ref_of(obs), _increased(obs)) if isinstance(val, str) and val.strip() else None


@dataclass(frozen=True)
class Value:
    """One numeric Observation, dated by the imaging report that groups it, in the spec's canonical unit."""

    date: date
    value: Decimal
    ref: str | None
    resource: Resource


def numeric_observations(record: PatientRecord, keys: Iterable[str], spec: UnitSpec, tp_dates: Mapping[str, date], *,
                         what: str, input_name: str | None = None, options: Mapping[str, Any] | None = None,
                         allow_negative: bool = False) -> list[Value]:
    """Observations with a valueQuantity, converted to ``spec.canonical`` (unusable ones become issues).

    Unlike a lab value, a CT attenuation may be negative (``allow_negative``); a diameter may not.
    """
    wanted = list(keys) + [k for k, _ in local_codes(options, input_name)] if input_name else list(keys)
    out = []
    for obs in record.with_codes(wanted, "Observation"):
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, f"{what} skipped", "no date")
            continue
        try:
            v, unit, _ = quantity(obs.get("valueQuantity"))
        except (TypeError, AttributeError, ValueError):
            v, unit = None, None
        if v is None:
            if not (obs.get("dataAbsentReason") or obs.get("valueCodeableConcept") or obs.get("valueString")):
                record.issue(obs, f"{what} skipped", "no numeric value")
            continue
        try:
            value = normalise(v, unit, spec)
        except UnitError as exc:
            record.issue(obs, f"{what} skipped", str(exc))
            continue
        if value < 0 and not allow_negative:
            record.issue(obs, f"{what} skipped", "negative value")
            continue
        out.append(Value(d, value, ref_of(obs), obs))
    return out


def reported_values(record: PatientRecord, keys: Iterable[str], spec: UnitSpec, tp_dates: Mapping[str, date], *,
                    what: str, input_name: str | None = None, options: Mapping[str, Any] | None = None
                    ) -> dict[date, tuple[Decimal, str | None]]:
    """Time-point values (a reported sum): Observations without ``focus``, by date; the latest on a date wins."""
    out: dict[date, tuple[Decimal, str | None]] = {}
    for v in numeric_observations(record, keys, spec, tp_dates, what=what, input_name=input_name, options=options):
        if not v.resource.get("focus"):
            out[v.date] = (v.value, v.ref)
    return out


def timepoint_dates(record: PatientRecord) -> dict[str, date]:
    """Observation reference -> date of the imaging report that groups it."""
    return _timepoint_dates(record, [])


def keys_with_local(base: Iterable[str], options: Mapping[str, Any] | None, input_name: str) -> tuple[str, ...]:
    """Codes for one input plus the local codes configured for it (``options["local_codes"][input_name]``)."""
    return tuple(base) + tuple(k for k, _ in local_codes(options, input_name))


NT_WORDS = {
    "cr": "CR", "absent": "CR", "complete response": "CR", "disappeared": "CR", "no enhancement": "CR",
    "non-cr/non-pd": "non-CR/non-PD", "non-cr-non-pd": "non-CR/non-PD", "present": "non-CR/non-PD",
    "stable": "non-CR/non-PD", "sd": "non-CR/non-PD", "ir/sd": "non-CR/non-PD", "ir": "non-CR/non-PD",
    "non-icr/non-iupd": "non-CR/non-PD", "persistent": "non-CR/non-PD",
    "pd": "PD", "progression": "PD", "unequivocal progression": "PD", "further increase": "PD", "iupd": "PD",
    "icpd": "PD", "increased": "PD",
    "ne": "NE", "not evaluated": "NE", "not assessed": "NE", "not evaluable": "NE",
}


def non_target_word(raw: str) -> str | None:
    """A reader's non-target status as CR / non-CR/non-PD / PD / NE; None = no non-target disease.

    Descriptions ("2 bone metastases") are returned unchanged: at baseline they mean disease present (the
    engines read them so), at follow-up the engine reports them as not evaluable rather than guessing.
    """
    t = raw.strip().lower()
    if t in ("none", "no", "absent at baseline", "no non-target disease", ""):
        return None
    if t in NT_WORDS:
        return NT_WORDS[t]
    if t.startswith("present") or t.startswith("non-cr"):
        return "non-CR/non-PD"
    if t.startswith("unequivocal") or "further increase" in t or t.startswith("pd"):
        return "PD"
    return raw.strip()


def derived_non_target(d: date, baseline: date, non_targets: list[Lesion], gone) -> str | None:
    """Non-target status from measured non-target lesions (when no status Observation says it)."""
    if not non_targets:
        return None
    if d == baseline:
        return "non-CR/non-PD"
    measured = [(les, les.readings[d]) for les in non_targets if d in les.readings]
    if not measured:
        return "NE"
    if len(measured) == len(non_targets) and all(gone(les, r) for les, r in measured):
        return "CR"
    return "non-CR/non-PD"  # progression of non-target disease is a reader's call: a status Observation says it
