"""ATA 2015 DTC response-to-therapy inputs (rules.ata2015) from a FHIR record.

What is read (codes, grades and examples in docs/fhir-inputs-ata.md):

* **Thyroglobulin** - Observation LOINC 3013-0 (grade A; ng/mL = ug/L).  14918-7 (molar) only with a configured
  molar mass (``options["ata_tg_molar_mass_g_per_mol"]``): the conversion depends on the assay's convention, so it
  is never guessed.  FNA washout Tg (53920-5, 53922-1) is not serum Tg: recorded as an issue, not used.
  "<0.1" (``valueQuantity.comparator`` "<", or a valueString "<0.1 ng/mL") is below the detection limit.
* **How the Tg was drawn** (suppressed / rhTSH-stimulated / withdrawal-stimulated), first match wins:
  1. a coded context on the Tg Observation: component (or ``method``) ``LOCAL|tg-stimulation`` with value
     ``LOCAL|suppressed`` | ``rhtsh-stimulated`` | ``withdrawal-stimulated`` (or that text);
  2. words in the Tg Observation's code text, method or note ("stimulated", "rhTSH", "Thyrogen", "withdrawal",
     "on LT4", "basal");
  3. thyrotropin alfa (Thyrogen, rhTSH) given 0-10 days before the Tg (MedicationAdministration,
     MedicationRequest, MedicationStatement or Procedure) -> rhTSH-stimulated;
  4. after total thyroidectomy, a TSH >= 30 mIU/L within 3 days of the Tg and no rhTSH -> withdrawal-stimulated [I];
  5. otherwise non-stimulated ("suppressed" in the guideline's words), with a note on the card.
* **Anti-Tg antibodies** - LOINC 8098-6 (grade B; [IU]/mL = k[IU]/L; "IU/mL", "kIU/L" spellings accepted).
  Positive/negative from ``interpretation`` (POS/H/HH/A/DET vs NEG/N/ND/L), a coded or string value
  (SNOMED 10828004 Positive, 260385009 Negative, 260415000 Not detected), the comparator "<" (below the
  detection limit), or the value against ``referenceRange.high`` (the assay cut-off).  Assay from ``method``.
* **TSH** - LOINC 3016-3 (grade C+; m[IU]/L = u[IU]/mL).
* **Initial surgery** - Procedure: total / completion / near-total thyroidectomy, thyroid lobectomy /
  hemithyroidectomy (by text or display, CPT, ICD-10-PCS or ``LOCAL`` codes); RAI remnant ablation as Procedure,
  or MedicationAdministration / MedicationRequest / MedicationStatement of I-131 (not diagnostic tracer doses).
* **Imaging** - DiagnosticReports of neck ultrasound, diagnostic RAI whole-body scan, or CT / MRI / FDG-PET,
  classified from the impression text (negative / non-specific / faint thyroid-bed uptake / structural or
  functional disease; negation handled by fhir_mappings.report_text), or coded Observations
  ``LOCAL|thyroid-imaging-neck-us`` / ``-wbs`` / ``-cross-sectional`` with value ``LOCAL|negative`` |
  ``non-specific`` | ``faint-thyroid-bed-uptake`` | ``disease``.
* **ATA initial risk** - Observation ``LOCAL|ata-initial-risk`` with value low / intermediate / high (optional).
* **An earlier excellent response** - Observation ``LOCAL|ata-response`` valued "excellent", or a report stating
  "excellent response", dated before the first result used (gives "structural recurrence").

The mapper never raises on bad clinical data: unusable resources become ``record.issue(...)`` entries.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings.labs import local_codes
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    codings,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
    to_decimal,
)
from fhir_mappings.report_text import extract, items, report_texts, stated_in_record
from fhir_mappings.units import UnitError, UnitSpec, normalise
from rules import ata2015 as engine
from rules.base import Assessment
from rules.ata2015 import (
    AtaInputs,
    AtaRisk,
    ImagingFinding,
    ImagingModality,
    ImagingResult,
    Surgery,
    TgAbValue,
    TgCondition,
    TgValue,
    TshValue,
)

# --- codes ---------------------------------------------------------------------------------------------------
TG = f"{LOINC}|3013-0"                      # Thyroglobulin [Mass/volume] in Serum or Plasma (A)
TG_MOLAR = f"{LOINC}|14918-7"               # Thyroglobulin [Moles/volume] (A; needs a molar mass)
TG_FNA = {f"{LOINC}|53920-5": "thyroglobulin in a fine-needle aspirate washout",
          f"{LOINC}|53922-1": "thyroglobulin in a fine-needle aspirate washout"}
TGAB = f"{LOINC}|8098-6"                    # Thyroglobulin Ab [Units/volume] in Serum or Plasma (B)
TSH = f"{LOINC}|3016-3"                     # Thyrotropin [Units/volume] in Serum or Plasma (C+)
TG_CONTEXT = f"{LOCAL}|tg-stimulation"      # component/method on a Tg Observation
ATA_RISK = f"{LOCAL}|ata-initial-risk"
ATA_REPORTED = f"{LOCAL}|ata-response"
IMG_NECK_US = f"{LOCAL}|thyroid-imaging-neck-us"
IMG_WBS = f"{LOCAL}|thyroid-imaging-wbs"
IMG_CROSS = f"{LOCAL}|thyroid-imaging-cross-sectional"
IMAGING_CODES = {IMG_NECK_US: ImagingModality.NECK_US, IMG_WBS: ImagingModality.WBS,
                 IMG_CROSS: ImagingModality.CROSS_SECTIONAL}

CPT = "http://www.ama-assn.org/go/cpt"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
PROC_TOTAL = {f"{LOCAL}|total-thyroidectomy", f"{LOCAL}|completion-thyroidectomy",
              *(f"{CPT}|{c}" for c in ("60240", "60252", "60254", "60260", "60270", "60271")),
              *(f"{ICD10PCS}|{c}" for c in ("0GTK0ZZ", "0GTK4ZZ"))}
PROC_LOBECTOMY = {f"{LOCAL}|thyroid-lobectomy", f"{CPT}|60220",
                  *(f"{ICD10PCS}|{c}" for c in ("0GTG0ZZ", "0GTG4ZZ", "0GTH0ZZ", "0GTH4ZZ"))}
PROC_RAI = {f"{LOCAL}|rai-remnant-ablation", f"{CPT}|79005"}

OBSERVATION_CODES = (TG, TG_MOLAR, TGAB, TSH, ATA_RISK, ATA_REPORTED, IMG_NECK_US, IMG_WBS, IMG_CROSS)

# --- units ---------------------------------------------------------------------------------------------------
# Non-UCUM spellings labs send, mapped to UCUM before the unit check (never a change of quantity).
UNIT_ALIASES = {"ng/ml": "ng/mL", "µg/L": "ug/L", "mcg/L": "ug/L", "μg/L": "ug/L",
                "IU/mL": "[IU]/mL", "IU/ml": "[IU]/mL", "kIU/L": "k[IU]/L", "KIU/L": "k[IU]/L", "U/mL (IU)": "[IU]/mL",
                "mIU/L": "m[IU]/L", "mU/L": "m[IU]/L", "uIU/mL": "u[IU]/mL", "µIU/mL": "u[IU]/mL", "μIU/mL": "u[IU]/mL",
                "uU/mL": "u[IU]/mL", "µU/mL": "u[IU]/mL", "mIU/mL": "m[IU]/mL"}
_TG_REJECT = {
    "ng/L": "unit 'ng/L' is a thousand times smaller than the ng/mL thyroglobulin is reported in; check the result",
    "mg/L": "unit 'mg/L' cannot be right for serum thyroglobulin (a thousand times ng/mL); check the result",
    "[IU]/mL": "IU/mL is the unit of thyroglobulin antibodies (LOINC 8098-6), not thyroglobulin; check the code",
    "pmol/L": "molar thyroglobulin needs the assay's molar mass to convert; report in ng/mL or configure "
              "ata_tg_molar_mass_g_per_mol",
}
TG_NG_ML = UnitSpec("thyroglobulin", "ng/mL", ("ug/L",), _TG_REJECT)
TGAB_IU_ML = UnitSpec("thyroglobulin antibodies", "[IU]/mL", ("k[IU]/L",), {
    "ng/mL": "ng/mL is the unit of thyroglobulin (3013-0), not its antibodies; check the code",
    "U/mL": "U/mL is not IU/mL for thyroglobulin antibodies (assay-specific units); report in IU/mL",
})
TSH_MIU_L = UnitSpec("TSH", "m[IU]/L", ("u[IU]/mL",), {
    "[IU]/L": "TSH in IU/L would be a thousand times mIU/L; check the unit",
    "ng/mL": "ng/mL is not a TSH unit; check the code",
})

# --- vocabulary ----------------------------------------------------------------------------------------------
TSH_STIMULATED_MIN = Decimal("30")  # mIU/L: usual target before a stimulated Tg / RAI (ATA 2015) [I]
TSH_PAIR_DAYS = 3
RHTSH_WINDOW_DAYS = 10  # Tg is drawn 72 h after the second of two daily rhTSH injections (day 5)
_INTERP_POS = {"POS", "H", "HH", "HU", "A", "AA", "DET", "IND>"}
_INTERP_NEG = {"NEG", "N", "ND", "L", "LL"}
_SNOMED_POS = {f"{SNOMED}|10828004", f"{SNOMED}|52101004"}
_SNOMED_NEG = {f"{SNOMED}|260385009", f"{SNOMED}|260415000", f"{SNOMED}|2667000"}

_RHTSH_RE = re.compile(r"rh[\s-]?tsh|thyrogen|thyrotropin\s+alfa|thyrotropin\s+alpha|recombinant\s+(?:human\s+)?(?:tsh|thyrotropin)",
                       re.I)
_I131_RE = re.compile(r"\b(?:I[\s-]?131|iodine[\s-]?131|131[\s-]?I|radio[\s-]?iodine|radioactive\s+iodine|RAI|"
                      r"sodium\s+iodide\s+I[\s-]?131|remnant\s+ablation|radioiodine\s+ablation)\b", re.I)
_DIAGNOSTIC_RE = re.compile(r"\b(?:scan|scintigraph\w*|diagnostic|tracer|uptake\s+(?:test|study)|I[\s-]?123|WBS)\b", re.I)


def _u(unit: str | None) -> str | None:
    return UNIT_ALIASES.get(unit.strip(), unit.strip()) if isinstance(unit, str) else unit


def _all_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [concept.get("text") if isinstance(concept.get("text"), str) else ""]
    for c in items(concept.get("coding")):
        if isinstance(c, dict):
            parts += [c.get("display") or "", c.get("code") or ""]
    return " ".join(p for p in parts if isinstance(p, str) and p)


def _notes(res: Resource) -> str:
    return " ".join(n.get("text", "") for n in items(res.get("note")) if isinstance(n, dict) and isinstance(n.get("text"), str))


def _value_text(res: Resource) -> str:
    if isinstance(res.get("valueString"), str):
        return res["valueString"]
    return _all_text(res.get("valueCodeableConcept"))


def _observations(record: PatientRecord, codes: Iterable[str], input_name: str,
                  options: Mapping[str, Any]) -> list[tuple[Resource, str | None]]:
    keys = list(codes)
    units: dict[str, str | None] = {}
    for key, unit in local_codes(options, input_name):
        keys.append(key)
        units[key] = unit
    out = []
    for o in record.with_codes(keys, "Observation"):
        unit = next((units[k] for k in concept_keys(o.get("code")) if k in units), None)
        out.append((o, unit))
    return out


def _number(record: PatientRecord, obs: Resource, spec: UnitSpec, label: str, default_unit: str | None = None
            ) -> tuple[Decimal | None, str | None, bool]:
    """(value in the spec's unit, comparator, ok). ok=False means an issue was recorded and the result is unusable."""
    v, unit, comp = quantity(obs.get("valueQuantity"))
    if v is None and isinstance(obs.get("valueString"), str):
        m = re.fullmatch(r"\s*(<=|<|≤|>=|>|≥)?\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-zµμ\[\]/*0-9]+)?\s*(?:\(.*\))?\s*",
                         obs["valueString"])
        if m:
            v, unit = Decimal(m.group(2)), m.group(3)
            comp = {"≤": "<=", "≥": ">="}.get(m.group(1) or "", m.group(1))
            if unit is None and default_unit is None:
                record.issue(obs, f"{label} skipped", f"no unit given; expected {spec.canonical}")
                return None, None, False
    if v is None:
        return None, None, True
    try:
        value = normalise(v, _u(unit) or default_unit, spec)
    except UnitError as exc:
        record.issue(obs, f"{label} skipped", str(exc))
        return None, None, False
    if not value.is_finite() or value < 0:
        record.issue(obs, f"{label} skipped", "negative or non-finite value")
        return None, None, False
    return value, comp, True


# --- result ----------------------------------------------------------------------------------------------------

@dataclass
class AtaMapping:
    inputs: AtaInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Ctx:
    record: PatientRecord
    as_of: date
    options: Mapping[str, Any]
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# --- surgery -------------------------------------------------------------------------------------------------

_TOTAL_RE = re.compile(r"\b(?:total|completion|near[\s-]?total|complete)\s+(?:\w+\s+)?thyroidectomy\b|"
                       r"\bthyroidectomy\s*,?\s*(?:total|complete|completion)\b", re.I)
_SUBTOTAL_RE = re.compile(r"\bsub[\s-]?total\s+thyroidectomy\b", re.I)
_LOBE_RE = re.compile(r"\bhemi[\s-]?thyroidectomy\b|\bthyroid\s+lobectomy\b|\blobectomy\b.*\bthyroid\b|"
                      r"\bthyroid\b.*\blobectomy\b|\bthyroid\s+lobe\s+(?:resection|excision)\b", re.I)
_THYROIDECTOMY_RE = re.compile(r"\bthyroidectomy\b", re.I)


def _medication_text(res: Resource, record: PatientRecord) -> str:
    parts = [_all_text(res.get("medicationCodeableConcept")), _all_text(res.get("code"))]
    med = record.get(res.get("medicationReference"))
    if med is not None:
        parts.append(_all_text(med.get("code")))
    for d in items(res.get("dosageInstruction")):
        if isinstance(d, dict) and isinstance(d.get("text"), str):
            parts.append(d["text"])
    dosage = res.get("dosage")
    if isinstance(dosage, dict) and isinstance(dosage.get("text"), str):
        parts.append(dosage["text"])
    return " ".join(p for p in parts if p)


def _surgery(ctx: _Ctx) -> tuple[Surgery | None, list[str]]:
    record = ctx.record
    total = lobe = rai = False
    refs: list[str] = []
    for proc in record.of_type("Procedure"):
        if proc.get("status") in ("not-done", "preparation"):
            continue
        d = effective_date(proc)
        if d is not None and d > ctx.as_of:
            continue
        keys = concept_keys(proc.get("code"))
        text = _all_text(proc.get("code"))
        if keys & PROC_TOTAL or _TOTAL_RE.search(text):
            total = True
        elif _SUBTOTAL_RE.search(text):
            record.issue(proc, "thyroid surgery not used", "subtotal thyroidectomy fits neither the total-thyroidectomy "
                                                          "nor the lobectomy framework")
            continue
        elif keys & PROC_LOBECTOMY or _LOBE_RE.search(text):
            lobe = True
        elif _THYROIDECTOMY_RE.search(text):
            total = True
            ctx.note("Thyroidectomy recorded without its extent: read as total thyroidectomy [I].")
        elif keys & PROC_RAI or (_I131_RE.search(text) and not _DIAGNOSTIC_RE.search(text)):
            rai = True
        else:
            continue
        if ref_of(proc):
            refs.append(ref_of(proc) or "")
    for rtype in ("MedicationAdministration", "MedicationRequest", "MedicationStatement"):
        for res in record.of_type(rtype):
            if res.get("status") in ("not-done", "not-taken", "draft"):
                continue
            d = effective_date(res)
            if d is not None and d > ctx.as_of:
                continue
            text = _medication_text(res, record)
            if _I131_RE.search(text) and not _DIAGNOSTIC_RE.search(text):
                rai = True
                refs.append(ref_of(res) or "")
    if total:
        return (Surgery.TOTAL_THYROIDECTOMY_RAI if rai else Surgery.TOTAL_THYROIDECTOMY_NO_RAI), refs
    if rai:
        ctx.note("RAI remnant ablation recorded without the thyroidectomy: total thyroidectomy assumed "
                 "(remnant ablation follows total or completion thyroidectomy) [I].")
        return Surgery.TOTAL_THYROIDECTOMY_RAI, refs
    if lobe:
        return Surgery.LOBECTOMY, refs
    return None, refs


# --- Tg context ----------------------------------------------------------------------------------------------

def tg_context_from_text(text: str) -> TgCondition | str | None:
    t = (text or "").lower()
    if not t.strip():
        return None
    if re.search(r"non[\s-]?stimulated|unstimulated|not\s+stimulated|\bbasal\b|suppress|on\s+(?:lt4|l-?t4|levothyroxine|"
                 r"l-?thyroxine|thyroxine)|\bsuppressed\b", t):
        return TgCondition.SUPPRESSED
    if _RHTSH_RE.search(t):
        return TgCondition.STIMULATED_RHTSH
    if re.search(r"withdraw|hypothyroid|off\s+(?:lt4|l-?t4|levothyroxine|l-?thyroxine|thyroxine)", t):
        return TgCondition.STIMULATED_WITHDRAWAL
    if re.search(r"stimulated|stimulation", t):
        return "stimulated"
    return None


def _coded_context(obs: Resource) -> TgCondition | str | None:
    values = []
    for comp in items(obs.get("component")):
        if isinstance(comp, dict) and TG_CONTEXT in concept_keys(comp.get("code")):
            vc = comp.get("valueCodeableConcept")
            values.append(" ".join(k.split("|", 1)[1] for k in concept_keys(vc)) + " " + _all_text(vc))
            if isinstance(comp.get("valueString"), str):
                values.append(comp["valueString"])
    method = obs.get("method")
    if isinstance(method, dict):
        values.append(_all_text(method))
    for v in values:
        c = tg_context_from_text(v.replace("-", " ").replace("rhtsh stimulated", "rhtsh"))
        if c is not None:
            return c
    return None


def _rhtsh_dates(ctx: _Ctx) -> list[tuple[date, str | None]]:
    out = []
    for rtype in ("MedicationAdministration", "MedicationRequest", "MedicationStatement", "Procedure"):
        for res in ctx.record.of_type(rtype):
            if res.get("status") in ("not-done", "not-taken", "draft", "cancelled"):
                continue
            text = _medication_text(res, ctx.record)
            if _RHTSH_RE.search(text):
                d = effective_date(res)
                if d is not None:
                    out.append((d, ref_of(res)))
    return out


def _tg_condition(ctx: _Ctx, obs: Resource, d: date, surgery: Surgery, tsh: list[TshValue],
                  rhtsh: list[tuple[date, str | None]]) -> TgCondition:
    ctx_c = _coded_context(obs)
    if ctx_c is None:
        ctx_c = tg_context_from_text(" ".join((_all_text(obs.get("code")), _notes(obs))))
    given = [x for x in rhtsh if 0 <= (d - x[0]).days <= RHTSH_WINDOW_DAYS]
    if isinstance(ctx_c, TgCondition):
        return ctx_c
    if given:
        return TgCondition.STIMULATED_RHTSH
    near_tsh = [t for t in tsh if abs((t.date - d).days) <= TSH_PAIR_DAYS]
    high = [t for t in near_tsh if t.value_mIU_L >= TSH_STIMULATED_MIN]
    if ctx_c == "stimulated":
        if high:
            return TgCondition.STIMULATED_WITHDRAWAL
        ctx.note("A Tg is marked stimulated without saying how (rhTSH or withdrawal); the thresholds are the same, "
                 "it is shown as rhTSH-stimulated.")
        return TgCondition.STIMULATED_RHTSH
    if high and surgery is not Surgery.LOBECTOMY:
        ctx.note(f"Tg drawn with TSH >= {TSH_STIMULATED_MIN} mIU/L and no rhTSH recorded: read as "
                 "withdrawal-stimulated [I].")
        return TgCondition.STIMULATED_WITHDRAWAL
    ctx.note("Tg without a recorded stimulation (no rhTSH, no stimulation context on the result): read as "
             "non-stimulated (on levothyroxine) Tg.")
    return TgCondition.SUPPRESSED


# --- labs ------------------------------------------------------------------------------------------------------

def _tsh_series(ctx: _Ctx) -> list[TshValue]:
    out = []
    for obs, unit in _observations(ctx.record, (TSH,), "tsh", ctx.options):
        d = effective_date(obs)
        if d is None:
            ctx.record.issue(obs, "TSH skipped", "no date")
            continue
        v, _, ok = _number(ctx.record, obs, TSH_MIU_L, "TSH", unit)
        if v is not None:
            out.append(TshValue(d, v, ref_of(obs)))
        elif ok and not obs.get("dataAbsentReason"):
            ctx.record.issue(obs, "TSH skipped", "no numeric value")
    return out


def _tg_series(ctx: _Ctx, surgery: Surgery, tsh: list[TshValue]) -> list[TgValue]:
    record, out = ctx.record, []
    rhtsh = _rhtsh_dates(ctx)
    for key, what in TG_FNA.items():
        for obs in record.with_codes([key], "Observation"):
            record.issue(obs, "thyroglobulin not used", f"{what} is not serum thyroglobulin (node cytology only)")
    molar_mass = to_decimal(ctx.options.get("ata_tg_molar_mass_g_per_mol"))
    rows = _observations(record, (TG,), "thyroglobulin", ctx.options) + [
        (o, "molar") for o in record.with_codes([TG_MOLAR], "Observation")]
    for obs, unit in rows:
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "thyroglobulin skipped", "no date")
            continue
        if unit == "molar":
            v, u, comp = quantity(obs.get("valueQuantity"))
            u = _u(u)
            if v is not None and u in ("pmol/L", "nmol/L", "fmol/mL"):
                if molar_mass is None or molar_mass <= 0:
                    record.issue(obs, "thyroglobulin skipped", _TG_REJECT["pmol/L"])
                    continue
                pmol_l = v * (Decimal(1000) if u == "nmol/L" else Decimal(1))
                value: Decimal | None = pmol_l * molar_mass / Decimal(1000000)  # pmol/L x g/mol -> ng/mL
                ok = True
                ctx.note(f"Molar thyroglobulin converted with a molar mass of {molar_mass} g/mol (site setting).")
            else:
                value, comp, ok = _number(record, obs, TG_NG_ML, "thyroglobulin")
        else:
            value, comp, ok = _number(record, obs, TG_NG_ML, "thyroglobulin", unit)
        if value is None:
            if ok and not obs.get("dataAbsentReason"):
                record.issue(obs, "thyroglobulin skipped", "no numeric value (an 'undetectable' result needs the "
                                                           "detection limit, e.g. '<0.1 ng/mL')")
            continue
        if comp in (">", ">="):
            ctx.note("A Tg reported above the assay's range (\">\") is used at its reported bound.")
        cond = _tg_condition(ctx, obs, d, surgery, tsh, rhtsh)
        tsh_here = None
        for c in items(obs.get("component")):
            if isinstance(c, dict) and TSH in concept_keys(c.get("code")):
                cv, cu, _ = quantity(c.get("valueQuantity"))
                try:
                    tsh_here = normalise(cv, _u(cu), TSH_MIU_L) if cv is not None else None
                except UnitError as exc:
                    record.issue(obs, "TSH component skipped", str(exc))
        assay = _all_text(obs.get("method")) or None
        if assay and tg_context_from_text(assay) is not None:
            assay = None  # the method carries the stimulation context, not the assay
        out.append(TgValue(d, value, cond, below_detection_limit=comp in ("<", "<="), tsh_mIU_L=tsh_here,
                           assay=assay, ref=ref_of(obs)))
    return out


def _tgab_positive(obs: Resource) -> bool | None:
    for interp in items(obs.get("interpretation")):
        for _, code in codings(interp):
            if code.upper() in _INTERP_POS:
                return True
            if code.upper() in _INTERP_NEG:
                return False
    keys = concept_keys(obs.get("valueCodeableConcept"))
    if keys & _SNOMED_POS:
        return True
    if keys & _SNOMED_NEG:
        return False
    t = _value_text(obs).lower()
    if re.search(r"\b(?:negative|not\s+detected|undetectable|absent|non[\s-]?reactive)\b", t):
        return False
    if re.search(r"\b(?:positive|detected|present|reactive|elevated)\b", t):
        return True
    return None


def _tgab_series(ctx: _Ctx) -> list[TgAbValue]:
    record, out = ctx.record, []
    for obs, unit in _observations(record, (TGAB,), "thyroglobulin_ab", ctx.options):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "TgAb skipped", "no date")
            continue
        value, comp, ok = (None, None, True)
        if obs.get("valueQuantity") is not None or re.match(r"\s*[<>≤≥]?\s*\d", obs.get("valueString") or ""):
            value, comp, ok = _number(record, obs, TGAB_IU_ML, "TgAb value", unit)
            if not ok and _tgab_positive(obs) is None:
                continue  # the issue says why; nothing else on the result to go by
        positive = _tgab_positive(obs)
        url = None
        for rr in items(obs.get("referenceRange")):
            if isinstance(rr, dict) and isinstance(rr.get("high"), dict):
                hv, hu, _ = quantity(rr["high"])
                if hv is not None:
                    try:
                        url = normalise(hv, _u(hu) or unit or "[IU]/mL", TGAB_IU_ML)
                    except UnitError:
                        url = None
        below = comp in ("<", "<=")
        if value is None and positive is None:
            record.issue(obs, "TgAb skipped", "no value and no positive/negative interpretation")
            continue
        assay = _all_text(obs.get("method")) or _all_text((record.get(obs.get("device")) or {}).get("type")) or None
        out.append(TgAbValue(d, value, positive, assay, url, below, ref_of(obs)))
    return out


# --- imaging ---------------------------------------------------------------------------------------------------

_US_RE = re.compile(r"\b(?:US|ultrasound|ultrasonograph\w*|sonograph\w*|sonogram|echograph\w*|doppler)\b", re.I)
_NECK_RE = re.compile(r"\b(?:neck|thyroid|cervical|thyroid[\s-]bed|parathyroid|soft\s+tissue\s+head)\b", re.I)
_WBS_RE = re.compile(r"whole[\s-]?body\s+(?:scan|scintigraph\w*|imaging|survey)|\b(?:dx)?WBS\b|radio[\s-]?iodine\s+"
                     r"(?:scan|scintigraph\w*|imaging)|\b(?:I|iodine)[\s-]?(?:131|123)\b.*\b(?:scan|scintigraph\w*|imaging)\b|"
                     r"\bRAI\s+(?:scan|imaging)\b|\bthyroid\s+(?:cancer\s+)?(?:scan|scintigraph\w*)\b|"
                     r"\bpost[\s-]?(?:therapy|treatment|ablation)\s+scan\b|\bNM\b.*\b(?:thyroid|whole\s+body|iodine)\b", re.I)
_CROSS_RE = re.compile(r"\b(?:CT|CAT|computed\s+tomograph\w*|MRI?|magnetic\s+resonance|PET(?:/CT|-CT)?|FDG|positron)\b", re.I)
_RELEVANT_REGION_RE = re.compile(r"\b(?:neck|chest|thora\w*|lungs?|pulmonary|mediastin\w*|whole[\s-]?body|skull\s+base|"
                                 r"vertex|PET|FDG|bones?|spine|skelet\w*|thyroid)\b", re.I)
_NOT_IMAGING_CATEGORIES = {"http://loinc.org|LP7839-6", "http://terminology.hl7.org/CodeSystem/v2-0074|LAB",
                           "http://terminology.hl7.org/CodeSystem/v2-0074|PAT",
                           "http://terminology.hl7.org/CodeSystem/v2-0074|SP"}
_IMAGING_CATEGORIES = {"http://loinc.org|LP29684-5", *(f"http://terminology.hl7.org/CodeSystem/v2-0074|{c}"
                                                      for c in ("RAD", "NMS", "RUS", "CT", "NMR"))}
_SECTION_SKIP = re.compile(r"^\s*(?:clinical\s+(?:history|information|indication)|history|indications?|reason(?:\s+for\s+"
                           r"(?:exam|study))?|comparison|technique|procedure)\s*:.*$", re.I | re.M)
_IMPRESSION = re.compile(r"\b(?:impression|conclusions?|opinion|summary)\s*:\s*", re.I)


def modality_of(text: str) -> ImagingModality | None:
    """The ATA imaging modality a report's title or code text names (None when it names none of them)."""
    if _WBS_RE.search(text):
        return ImagingModality.WBS
    if _US_RE.search(text) and _NECK_RE.search(text):
        return ImagingModality.NECK_US
    if _CROSS_RE.search(text):
        return ImagingModality.CROSS_SECTIONAL
    return None


def impression_of(text: str) -> str:
    """The impression/conclusion part of a report (history, indication and comparison lines dropped)."""
    m = None
    for m in _IMPRESSION.finditer(text):
        pass
    if m is not None:
        return text[m.end():]
    return _SECTION_SKIP.sub(" ", text) if ":" in text else text


_DISEASE_KINDS = {"metastasis", "suspicious", "recurrence", "malignancy", "disease", "new_lesion"}
_DISEASE_WORDS = re.compile(r"\b(?:persistent|residual|recurrent|structural|nodal|locoregional)\s+(?:disease|tumou?r|"
                            r"carcinoma)\b|\bpositive\s+for\s+(?:papillary|follicular|thyroid|carcinoma|malignan)|"
                            r"\b(?:papillary|follicular|thyroid)\s+carcinoma\b", re.I)


# a negation cue shortly before a disease phrase, in the same clause: "no structural disease", "negative for
# papillary carcinoma", "without residual tumour" (the phrase is then a negative statement, not disease)
_NEG_BEFORE = re.compile(r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|no\s+evidence\s+of|"
                         r"no\s+sign\w*\s+of|ruled?\s+out)\b(?:[\s,/-]+[\w-]+){0,4}[\s,/-]*$", re.I)
# a report that opens with a negative verdict and goes on to describe normal anatomy: "Negative (normal
# contralateral lobe)", "Normal - no nodes", "negative, normal remaining lobe"
_NEGATIVE_HEAD = re.compile(r"^\s*(?:negative|normal|unremarkable|clear|no\s+evidence\s+of\s+(?:disease|recurrence)|"
                            r"ned)\s*(?:[(,;:.\u2013-]|$)", re.I)


def _unnegated_disease_words(text: str) -> bool:
    """A disease phrase ("structural disease", "papillary carcinoma") that no cue before it negates."""
    for m in _DISEASE_WORDS.finditer(text):
        clause_start = max(text.rfind(c, 0, m.start()) for c in ".;:\n") + 1
        if not _NEG_BEFORE.search(text[clause_start:m.start()]):
            return True
    return False


def classify_imaging(text: str) -> ImagingResult | None:
    """Negative / non-specific / faint thyroid-bed uptake / disease from an impression; None if unclassifiable."""
    stated = extract(text)
    pos = [s for s in stated if not s.negated]
    if any(s.kind in _DISEASE_KINDS for s in pos):
        return ImagingResult.DISEASE
    uptake = [s for s in pos if s.kind == "uptake"]
    if any(not re.search(r"thyroid[\s-]bed|remnant", text[s.start:s.end + 40], re.I) for s in uptake):
        return ImagingResult.DISEASE
    if _unnegated_disease_words(text) and not any(s.negated and s.kind in _DISEASE_KINDS for s in stated):
        return ImagingResult.DISEASE
    if any(s.kind == "faint_thyroid_bed_uptake" for s in pos):
        return ImagingResult.FAINT_THYROID_BED_UPTAKE
    if any(s.kind == "nonspecific" for s in pos) or uptake:
        return ImagingResult.NONSPECIFIC
    if any(s.kind == "study_negative" for s in pos) or any(s.negated and s.kind in _DISEASE_KINDS | {"uptake"}
                                                             for s in stated):
        return ImagingResult.NEGATIVE
    if _NEGATIVE_HEAD.match(text) or _DISEASE_WORDS.search(text):
        # a negative verdict followed by normal anatomy (nothing above read as disease, non-specific or uptake),
        # or a disease phrase that is negated ("no structural disease")
        return ImagingResult.NEGATIVE
    return None


_CODED_RESULTS = {"negative": ImagingResult.NEGATIVE, "non-specific": ImagingResult.NONSPECIFIC,
                  "nonspecific": ImagingResult.NONSPECIFIC, "faint-thyroid-bed-uptake": ImagingResult.FAINT_THYROID_BED_UPTAKE,
                  "disease": ImagingResult.DISEASE, "structural-disease": ImagingResult.DISEASE,
                  "functional-disease": ImagingResult.DISEASE}


_SNOMED_NO_ABNORMALITY = {f"{SNOMED}|281900007", f"{SNOMED}|260385009"}  # No abnormality detected; Negative


def _coded_conclusion(rep: Resource) -> ImagingResult | None:
    """A coded ``conclusionCode``: project codes, or SNOMED no-abnormality / negative (other codes: read as text)."""
    found = []
    for cc in items(rep.get("conclusionCode")):
        for k in concept_keys(cc):
            system, code = k.split("|", 1)
            if system == LOCAL and code.lower() in _CODED_RESULTS:
                found.append(_CODED_RESULTS[code.lower()])
            elif k in _SNOMED_NO_ABNORMALITY:
                found.append(ImagingResult.NEGATIVE)
    order = (ImagingResult.DISEASE, ImagingResult.FAINT_THYROID_BED_UPTAKE, ImagingResult.NONSPECIFIC,
             ImagingResult.NEGATIVE)
    return next((r for r in order if r in found), None)


def _imaging(ctx: _Ctx) -> list[ImagingFinding]:
    record, out = ctx.record, []
    for key, modality in IMAGING_CODES.items():
        for obs in record.with_codes([key], "Observation"):
            d = effective_date(obs)
            if d is None:
                record.issue(obs, "imaging finding skipped", "no date")
                continue
            result = None
            for k in concept_keys(obs.get("valueCodeableConcept")):
                result = result or _CODED_RESULTS.get(k.split("|", 1)[1].lower())
            text = _value_text(obs)
            if result is None:
                if concept_keys(obs.get("valueCodeableConcept")) & _SNOMED_NEG:
                    result = ImagingResult.NEGATIVE
                else:
                    result = classify_imaging(text)
            if result is None:
                record.issue(obs, "imaging finding skipped", "the result is not negative, non-specific, faint "
                                                             "thyroid-bed uptake or disease")
                continue
            out.append(ImagingFinding(d, modality, result, text[:120], ref_of(obs)))
    for rep in record.of_type("DiagnosticReport"):
        cats = set()
        for c in items(rep.get("category")):
            cats |= concept_keys(c)
        if cats & _NOT_IMAGING_CATEGORIES:
            continue
        title = _all_text(rep.get("code"))
        full = report_texts(rep)
        modality = modality_of(title) or modality_of(full[:160])
        if modality is None and not cats & _IMAGING_CATEGORIES:
            continue  # not an imaging study (cheap test first: a record may hold hundreds of reports)
        impression = impression_of(full) if full else ""
        result = _coded_conclusion(rep) or (classify_imaging(impression) if impression.strip() else None)
        if modality is None:
            if result is ImagingResult.DISEASE and cats & _IMAGING_CATEGORIES:
                modality = ImagingModality.CROSS_SECTIONAL  # e.g. a chest radiograph showing lung metastases
            else:
                continue  # not an imaging study ATA uses
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "imaging report skipped", "no date")
            continue
        if result is None:
            record.issue(rep, "imaging report not used", "its conclusion could not be read as negative, non-specific, "
                                                         "faint thyroid-bed uptake or disease; code the finding")
            continue
        if (modality is ImagingModality.CROSS_SECTIONAL and result is not ImagingResult.DISEASE
                and not _RELEVANT_REGION_RE.search(title + " " + full[:200])):
            continue  # a negative CT of another region says nothing about neck or lungs
        desc = re.sub(r"\s+", " ", impression).strip()[:160]
        out.append(ImagingFinding(d, modality, result, desc, ref_of(rep)))
    return out


# --- risk and earlier response -----------------------------------------------------------------------------------

def _risk(ctx: _Ctx) -> AtaRisk | None:
    risk = None
    for obs in ctx.record.with_codes([ATA_RISK, *(k for k, _ in local_codes(ctx.options, "ata_initial_risk"))],
                                     "Observation"):
        d = effective_date(obs)
        if d is not None and d > ctx.as_of:
            continue
        t = (" ".join(k.split("|", 1)[1] for k in concept_keys(obs.get("valueCodeableConcept"))) + " "
             + _value_text(obs)).lower()
        if "intermediate" in t:
            risk = AtaRisk.INTERMEDIATE
        elif "high" in t:
            risk = AtaRisk.HIGH
        elif "low" in t:
            risk = AtaRisk.LOW
        else:
            ctx.record.issue(obs, "ATA initial risk skipped", "value is not low, intermediate or high")
    return risk


def _prior_excellent(ctx: _Ctx, first: date | None) -> bool:
    if first is None:
        return False
    for obs in ctx.record.with_codes([ATA_REPORTED], "Observation"):
        d = effective_date(obs)
        t = (" ".join(k.split("|", 1)[1] for k in concept_keys(obs.get("valueCodeableConcept"))) + " "
             + _value_text(obs)).lower()
        if d is not None and d < first and "excellent" in t:
            ctx.note(f"An excellent response was reported on {d.isoformat()} (before the results used here).")
            return True
    earlier = [rep for rep in ctx.record.of_type("DiagnosticReport")
               if (effective_date(rep) or first) < first and "excellent" in report_texts(rep).lower()]
    for d, _, s in stated_in_record(ctx.record, {"ata"}, reports=earlier):
        if d < first and s.value == "excellent" and not s.negated:
            ctx.note(f"An excellent response was stated in a report on {d.isoformat()} (before the results used here).")
            return True
    return False


# --- entry point -----------------------------------------------------------------------------------------------

def map_ata(record: PatientRecord, as_of: date, options: Mapping[str, Any] | None = None) -> AtaMapping:
    """The engine inputs, or what is missing; never raises on clinical data."""
    ctx = _Ctx(record, as_of, options or {})
    surgery, _ = _surgery(ctx)
    if surgery is None:
        return AtaMapping(None, ("initial thyroid surgery (Procedure: total thyroidectomy or thyroid lobectomy; RAI "
                                 "ablation as Procedure or I-131 medication) - surgery older than the service's look-back "
                                 "window may not have been fetched",), tuple(ctx.notes))
    tsh = _tsh_series(ctx)
    tg = _tg_series(ctx, surgery, tsh)
    tgab = _tgab_series(ctx)
    imaging = _imaging(ctx)
    dates = [x.date for x in (*tg, *tgab, *imaging)]
    first = min(dates) if dates else None
    inputs = AtaInputs(surgery, tuple(tg), tuple(tgab), tuple(imaging), tuple(tsh), _risk(ctx),
                       _prior_excellent(ctx, first))
    return AtaMapping(inputs, (), tuple(ctx.notes))


ENGINE_OPTIONS = {"ata_biochemical_boundary": "biochemical_boundary",
                  "ata_elevated_tg_counts_with_tgab": "elevated_tg_counts_with_tgab",
                  "ata_rising_tg_requires_tsh": "rising_tg_requires_tsh",
                  "ata_lobectomy_requires_tg_series": "lobectomy_requires_tg_series"}


def engine_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {kw: (options or {})[k] for k, kw in ENGINE_OPTIONS.items() if k in (options or {})}


def assess(record: PatientRecord, as_of: date, options: Mapping[str, Any] | None = None
           ) -> tuple[Assessment | None, AtaMapping]:
    """Map and assess in one call (used by the pipeline entry and the tests)."""
    m = map_ata(record, as_of, options)
    if m.inputs is None:
        return None, m
    return engine.assess(m.inputs, as_of, **engine_options(options)), m
