"""iwCLL 2018 inputs (rules.iwcll2018 dataclasses) from a FHIR record, with issues for what cannot be used.

Representations (codes, grades, units and one example resource each are in docs/fhir-inputs-iwcll.md):

* Lymph nodes: the largest node's longest diameter (project code ``cll-largest-node-diameter``) and the sum of the
  products of diameters (``cll-node-spd``), or per-node mCODE TumorSize Observations (LOINC 21889-1, components
  33728-7 longest / 33729-5 perpendicular) whose ``focus`` BodyStructure or ``bodySite`` is a lymph node; without a
  size, a lymphadenopathy finding (SNOMED CT 30746006, present / absent: absent = no node >= 1.5 cm).
* Spleen: craniocaudal length (``spleen-length``; mm/cm) or a splenomegaly finding (SNOMED CT 16294009, present /
  absent; ``spleen-normal`` valueBoolean). Liver: size (``liver-size``), normal flag (``liver-normal`` valueBoolean)
  or a hepatomegaly finding (SNOMED CT 80515008, present / absent).
* Constitutional symptoms: ``constitutional-symptoms`` (valueBoolean, present/absent, or text "none"), or a present
  B-symptom finding (fever 386661006, night sweats 42984000, weight loss 89362005).
* Counts (10^9/L): lymphocytes LOINC 731-0 / 26474-7 / 732-8, platelets 777-3 / 26515-7 / 778-1 (49497-1 estimate
  skipped with an issue), neutrophils 751-8 / 753-4 / 26499-4 (752-6 deprecated skipped with an issue).
  Haemoglobin (g/dL): 718-7 / 20509-6 / 55782-7 (g/dL, g/L) and 59260-0 (mmol/L x 1.611).
* Transfusion: ``transfused`` (valueBoolean) or a red-cell transfusion Procedure (SNOMED CT 116863004 / 116859006 or
  words) or an erythropoiesis-stimulating agent in the ``TRANSFUSION_DAYS`` before the haemoglobin.
* Marrow: ``cll-marrow-finding`` (project codes normocellular-clear | hypocellular-clear | residual, or text), or a
  bone-marrow report (LOINC 48807-2 / 33721-2) text; CLL cells in marrow % (``cll-marrow-infiltration``).
* Cytopenia attributed to CLL (``cytopenia-due-to-cll``), new lesion (``cll-new-lesion``), Richter transformation
  (``richter-transformation`` or a Condition naming Richter), a recorded earlier category (``iwcll-response``:
  CR, CRi, PR, PR-L, SD, PD, or ``baseline`` for the pre-treatment assessment).
* Therapy (MedicationRequest / MedicationStatement / MedicationAdministration by name): BCR-pathway inhibitor at the
  current assessment; start (for the baseline) and end (for the timing / refractory rules) of the CLL therapy.
* MRD: the project's MRD result (``fhir_mappings.mrd``), judged for uMRD4 by rules/mrd.py.

Time points [I]: values within ``WINDOW_DAYS`` (option ``iwcll_assessment_window_days``) of the first value of a
group are one assessment, dated by its latest value, and a group never spans the start of therapy. Baseline: the
assessment recorded as ``baseline``, else the last assessment before the start of the latest CLL therapy; earlier
assessments belong to an earlier line and are not used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings import mrd as mrd_map
from fhir_mappings.mrd import dig, items
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
from fhir_mappings.units import COUNT_10E9_L, PERCENT, UnitError, UnitSpec, normalise
from rules import mrd as mrd_engine
from rules.iwcll2018 import CllInputs, CllTimepoint, Marrow

# --- codes -------------------------------------------------------------------------------------------
LARGEST_NODE = f"{LOCAL}|cll-largest-node-diameter"
NODE_SPD = f"{LOCAL}|cll-node-spd"
SPLEEN_LENGTH = f"{LOCAL}|spleen-length"
SPLEEN_NORMAL = f"{LOCAL}|spleen-normal"
LIVER_SIZE = f"{LOCAL}|liver-size"
LIVER_NORMAL = f"{LOCAL}|liver-normal"
CONSTITUTIONAL = f"{LOCAL}|constitutional-symptoms"
TRANSFUSED = f"{LOCAL}|transfused"
MARROW_FINDING = f"{LOCAL}|cll-marrow-finding"
MARROW_INFILTRATION = f"{LOCAL}|cll-marrow-infiltration"
CYTOPENIA_DUE_TO_CLL = f"{LOCAL}|cytopenia-due-to-cll"
NEW_LESION = f"{LOCAL}|cll-new-lesion"
TRANSFORMATION = f"{LOCAL}|richter-transformation"
REPORTED = f"{LOCAL}|iwcll-response"

SPLENOMEGALY = f"{SNOMED}|16294009"
LYMPHADENOPATHY = f"{SNOMED}|30746006"   # Lymphadenopathy (finding): absent = no node >= 1.5 cm (CR column)
HEPATOMEGALY = f"{SNOMED}|80515008"
B_SYMPTOMS = (f"{SNOMED}|386661006", f"{SNOMED}|42984000", f"{SNOMED}|89362005")  # fever, night sweats, weight loss

TUMOR_SIZE = f"{LOINC}|21889-1"
LONGEST = f"{LOINC}|33728-7"
OTHER_DIM = f"{LOINC}|33729-5"
LYMPH_NODE_SITES = {f"{SNOMED}|59441001", f"{SNOMED}|181756000"}

LYMPHOCYTES = (f"{LOINC}|731-0", f"{LOINC}|26474-7", f"{LOINC}|732-8")
PLATELETS = (f"{LOINC}|777-3", f"{LOINC}|26515-7", f"{LOINC}|778-1")
PLATELETS_ESTIMATE = f"{LOINC}|49497-1"
HEMOGLOBIN = (f"{LOINC}|718-7", f"{LOINC}|20509-6", f"{LOINC}|55782-7", f"{LOINC}|59260-0")
NEUTROPHILS = (f"{LOINC}|751-8", f"{LOINC}|753-4", f"{LOINC}|26499-4")
NEUTROPHILS_DEPRECATED = f"{LOINC}|752-6"
MARROW_REPORTS = {f"{LOINC}|48807-2", f"{LOINC}|33721-2"}
TRANSFUSION_PROCEDURES = {f"{SNOMED}|116863004", f"{SNOMED}|116859006", f"{SNOMED}|5447007"}

PRESENT = {f"{SNOMED}|52101004", f"{SNOMED}|373066001", f"{LOCAL}|present", f"{LOCAL}|yes"}
ABSENT = {f"{SNOMED}|2667000", f"{SNOMED}|373067005", f"{LOCAL}|absent", f"{LOCAL}|no", f"{LOCAL}|none"}

MARROW_CODES = {f"{LOCAL}|normocellular-clear": Marrow.NORMOCELLULAR_CLEAR,
                f"{LOCAL}|hypocellular-clear": Marrow.HYPOCELLULAR_CLEAR, f"{LOCAL}|residual": Marrow.RESIDUAL}

OBSERVATION_CODES = (LARGEST_NODE, NODE_SPD, SPLEEN_LENGTH, SPLEEN_NORMAL, LIVER_SIZE, LIVER_NORMAL, CONSTITUTIONAL,
                     TRANSFUSED, MARROW_FINDING, MARROW_INFILTRATION, CYTOPENIA_DUE_TO_CLL, NEW_LESION,
                     TRANSFORMATION, REPORTED, SPLENOMEGALY, HEPATOMEGALY, *B_SYMPTOMS, TUMOR_SIZE, *LYMPHOCYTES,
                     *PLATELETS, PLATELETS_ESTIMATE, *HEMOGLOBIN, *NEUTROPHILS, NEUTROPHILS_DEPRECATED,
                     mrd_map.MRD_RESULT)

# --- units -------------------------------------------------------------------------------------------
_SIZE_REJECT = {"m": "a lymph node or organ size in metres cannot be right; expected mm or cm",
                "um": "a lymph node or organ size in micrometres cannot be right; expected mm or cm",
                "mm2": "an area is not a diameter / length; expected mm or cm",
                "cm2": "an area is not a diameter / length; expected mm or cm"}
SIZE_MM = UnitSpec("a lymph node or organ size", "mm", ("cm",), _SIZE_REJECT)
SPD_MM2 = UnitSpec("a sum of products of node diameters", "mm2", ("cm2",),
                   {"mm": "a diameter is not a sum of products; expected mm2 or cm2",
                    "cm": "a diameter is not a sum of products; expected mm2 or cm2"})
_COUNT_EXTRA_REJECT = {"%": "a percentage is not an absolute count (send the count in 10*9/L; the % has its own "
                            "LOINC code)"}
COUNTS = UnitSpec(COUNT_10E9_L.name, COUNT_10E9_L.canonical, COUNT_10E9_L.accepted + ("10^9/L", "10*9/l"),
                  {**COUNT_10E9_L.rejected, **_COUNT_EXTRA_REJECT})
HB_MMOL_TO_G_DL = Decimal("1.611")   # codes.md §3.2 / §4: Hb [Moles/volume] 59260-0 x 1.611 -> g/dL
HB = UnitSpec("haemoglobin", "g/dL", ("g/L",))
SPLEEN_MIN_PLAUSIBLE_MM = Decimal(40)   # a spleen shorter than 4 cm is a unit error (cm sent as mm), not a size

WINDOW_DAYS = 30
TRANSFUSION_DAYS = 28   # [I] a red-cell transfusion / ESA in the 4 weeks before the Hb makes it "transfused"

BCR_INHIBITORS = ("ibrutinib", "acalabrutinib", "zanubrutinib", "pirtobrutinib", "orelabrutinib", "idelalisib",
                  "duvelisib", "umbralisib", "btk inhibitor", "bcr inhibitor", "pi3k inhibitor", "bcr-pathway")
CLL_THERAPY = BCR_INHIBITORS + ("venetoclax", "obinutuzumab", "rituximab", "ofatumumab", "fludarabine",
                                "cyclophosphamide", "bendamustine", "chlorambucil", "alemtuzumab", "lenalidomide",
                                "pentostatin", "fcr", "chemoimmunotherapy", "cll therapy", "cll treatment",
                                "fixed-duration", "ven-obi", "venobi")
ESA = ("epoetin", "darbepoetin", "erythropoietin", "methoxy polyethylene glycol-epoetin")


# --- small readers ------------------------------------------------------------------------------------
def _text(res: Resource) -> str:
    parts = [concept_text(res.get("valueCodeableConcept"))]
    if isinstance(res.get("valueString"), str):
        parts.append(res["valueString"])
    parts += [n["text"] for n in items(res.get("note")) if isinstance(n, dict) and isinstance(n.get("text"), str)]
    return " ".join(p for p in parts if p)


def presence(res: Resource) -> bool | None:
    """True (present / yes), False (absent / no / none), None (not stated) of a finding Observation."""
    if isinstance(res.get("valueBoolean"), bool):
        return res["valueBoolean"]
    keys = concept_keys(res.get("valueCodeableConcept"))
    if keys & PRESENT:
        return True
    if keys & ABSENT:
        return False
    t = _text(res).strip().lower()
    if not t:
        return None
    if re.match(r"^(no|none|absent|negative|not present|denies|nil|normal|not palpable|false)\b", t):
        return False
    if re.match(r"^(yes|present|positive|true)\b", t):
        return True
    return None


def _dated(record: PatientRecord, res: Resource, what: str) -> date | None:
    d = effective_date(res)
    if d is None:
        record.issue(res, f"{what} skipped", "no date")
    return d


def _keys(base: Iterable[str], options: Mapping[str, Any] | None, *, input_name: str) -> list[str]:
    """The input's codes plus the site's configured codes (``options["local_codes"][input_name]``)."""
    return list(base) + [k for k, _ in local_codes(options, input_name)]


@dataclass
class _Point:
    """Everything read for one date, before grouping into assessments."""

    values: dict[str, Any] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)

    def put(self, key: str, value: Any, ref: str | None) -> None:
        self.values[key] = value
        if ref and ref not in self.refs:
            self.refs.append(ref)


class _Collector:
    def __init__(self, record: PatientRecord) -> None:
        self.record = record
        self.points: dict[date, _Point] = {}

    def put(self, d: date, key: str, value: Any, ref: str | None) -> None:
        self.points.setdefault(d, _Point()).put(key, value, ref)


def _read_sizes(c: _Collector, options: Mapping[str, Any] | None) -> None:
    record = c.record
    for lv in lab_series(record, [LARGEST_NODE], SIZE_MM, input_name="largest_node", options=options,
                         what="largest lymph node diameter"):
        c.put(lv.date, "largest_node_mm", lv.value, lv.ref)
    for lv in lab_series(record, [NODE_SPD], SPD_MM2, input_name="node_spd", options=options, what="lymph node SPD"):
        c.put(lv.date, "node_spd_mm2", lv.value, lv.ref)
    for lv in lab_series(record, [SPLEEN_LENGTH], SIZE_MM, input_name="spleen", options=options,
                         what="spleen length"):
        if lv.value < SPLEEN_MIN_PLAUSIBLE_MM:
            record.issue(lv.resource, "spleen length skipped",
                         f"{lv.value} mm is not a plausible spleen length; was the unit meant to be cm?")
            continue
        c.put(lv.date, "spleen_mm", lv.value, lv.ref)
    for lv in lab_series(record, [LIVER_SIZE], SIZE_MM, input_name="liver", options=options, what="liver size"):
        c.put(lv.date, "liver_mm", lv.value, lv.ref)
    _read_tumor_sizes(c)


def _is_node(record: PatientRecord, obs: Resource) -> bool:
    holders = [obs.get("bodySite")]
    for f in items(obs.get("focus")):
        body = record.get(f)
        if body is not None:
            holders.append(body.get("location"))
    for h in holders:
        if concept_keys(h) & LYMPH_NODE_SITES:
            return True
        t = concept_text(h).lower()
        if "lymph node" in t or "nodal" in t or re.search(r"\bnodes?\b", t):
            return True
    return False


def _read_tumor_sizes(c: _Collector) -> None:
    """Per-node mCODE TumorSize -> largest diameter and SPD of the nodes measured on each date."""
    record = c.record
    per_date: dict[date, list[tuple[Decimal, Decimal | None, str | None]]] = {}
    for obs in record.with_codes([TUMOR_SIZE], "Observation"):
        if not _is_node(record, obs):
            continue
        d = _dated(record, obs, "lymph node size")
        if d is None:
            continue
        ld = other = None
        for comp in items(obs.get("component")):
            if not isinstance(comp, dict):
                continue
            keys = concept_keys(comp.get("code"))
            v, unit, _ = quantity(comp.get("valueQuantity"))
            if v is None or not keys & {LONGEST, OTHER_DIM}:
                continue
            try:
                mm = normalise(v, unit, SIZE_MM)
            except UnitError as exc:
                record.issue(obs, "lymph node size skipped", str(exc))
                continue
            if LONGEST in keys:
                ld = mm
            elif other is None or mm > other:
                other = mm
        if ld is not None:
            per_date.setdefault(d, []).append((ld, other, ref_of(obs)))
    for d, nodes in per_date.items():
        pt = c.points.get(d)
        if pt is None or "largest_node_mm" not in pt.values:
            c.put(d, "largest_node_mm", max(n[0] for n in nodes), nodes[0][2])
        if all(n[1] is not None for n in nodes) and (pt is None or "node_spd_mm2" not in pt.values):
            c.put(d, "node_spd_mm2", sum((n[0] * n[1] for n in nodes), Decimal(0)), nodes[0][2])
        for n in nodes:
            c.put(d, "_node_ref", None, n[2])


def _read_flag(c: _Collector, keys: list[str], key: str, invert: bool = False) -> None:
    record = c.record
    label = key.replace("_", " ")
    for obs in record.with_codes(keys, "Observation"):
        d = _dated(record, obs, label)
        if d is None:
            continue
        v = presence(obs)
        if v is None and key == "constitutional_symptoms" and _text(obs).strip():
            v = True   # a described symptom ("night sweats") is present
        if v is None:
            record.issue(obs, f"{label} skipped", "no present / absent value")
            continue
        c.put(d, key, (not v) if invert else v, ref_of(obs))


def _read_flags(c: _Collector, options: Mapping[str, Any] | None) -> None:
    record = c.record
    _read_flag(c, _keys([SPLEEN_NORMAL], options, input_name="spleen_normal"), "spleen_normal")
    _read_flag(c, _keys([SPLENOMEGALY], options, input_name="splenomegaly"), "spleen_normal", invert=True)
    _read_flag(c, _keys([LYMPHADENOPATHY], options, input_name="lymphadenopathy"), "nodes_normal", invert=True)
    _read_flag(c, _keys([LIVER_NORMAL], options, input_name="liver_normal"), "liver_normal")
    _read_flag(c, _keys([HEPATOMEGALY], options, input_name="hepatomegaly"), "liver_normal", invert=True)
    _read_flag(c, _keys([CONSTITUTIONAL], options, input_name="constitutional_symptoms"), "constitutional_symptoms")
    _read_flag(c, _keys([TRANSFUSED], options, input_name="transfused"), "transfused")
    _read_flag(c, _keys([CYTOPENIA_DUE_TO_CLL], options, input_name="cytopenia_due_to_cll"), "cytopenia_due_to_cll")
    _read_flag(c, _keys([NEW_LESION], options, input_name="cll_new_lesion"), "new_lesion")
    _read_flag(c, _keys([TRANSFORMATION], options, input_name="richter_transformation"), "transformation")
    for obs in record.with_codes(B_SYMPTOMS, "Observation"):
        d = _dated(record, obs, "B symptom")
        if d is not None and presence(obs) is True:
            c.put(d, "constitutional_symptoms", True, ref_of(obs))
    for cond in record.of_type("Condition"):
        if re.search(r"richter", concept_text(cond.get("code")), re.I):
            d = parse_date(cond.get("onsetDateTime")) or parse_date(cond.get("recordedDate"))
            if d:
                c.put(d, "transformation", True, ref_of(cond))


def _read_counts(c: _Collector, options: Mapping[str, Any] | None) -> None:
    record = c.record
    for lv in lab_series(record, LYMPHOCYTES, COUNTS, input_name="lymphocytes", options=options,
                         what="lymphocyte count"):
        c.put(lv.date, "lymphocytes", lv.value, lv.ref)
    for lv in lab_series(record, PLATELETS, COUNTS, input_name="platelets", options=options, what="platelet count"):
        c.put(lv.date, "platelets", lv.value, lv.ref)
    for lv in lab_series(record, NEUTROPHILS, COUNTS, input_name="neutrophils", options=options,
                         what="neutrophil count"):
        c.put(lv.date, "neutrophils", lv.value, lv.ref)
    for code, why in ((PLATELETS_ESTIMATE, "a platelet estimate (49497-1) is not used for thresholds (codes.md §3.2)"),
                      (NEUTROPHILS_DEPRECATED, "LOINC 752-6 is deprecated (codes.md §5); send 751-8")):
        for obs in record.with_codes([code], "Observation"):
            record.issue(obs, "count skipped", why)
    default_units = dict(local_codes(options, input_name="hemoglobin"))   # a configured code's unit (spec HB)
    for obs in record.with_codes(list(HEMOGLOBIN) + list(default_units), "Observation"):
        d = _dated(record, obs, "haemoglobin")
        if d is None:
            continue
        v, unit, _ = quantity(obs.get("valueQuantity"))
        unit = unit or next((u for k, u in default_units.items() if k in concept_keys(obs.get("code")) and u), None)
        if v is None:
            record.issue(obs, "haemoglobin skipped", "no numeric value")
            continue
        if (unit or "").strip() == "mmol/L":
            g_dl = v * HB_MMOL_TO_G_DL
        else:
            try:
                g_dl = normalise(v, unit, HB)
            except UnitError as exc:
                record.issue(obs, "haemoglobin skipped", str(exc))
                continue
        if g_dl <= 0 or g_dl > 30:
            record.issue(obs, "haemoglobin skipped", f"{g_dl} g/dL is not a plausible haemoglobin; check the unit")
            continue
        c.put(d, "hemoglobin_g_dl", g_dl, ref_of(obs))


# Marrow text, clause by clause.  A disease word is negated by a cue before it in its clause ("no CLL", "normocellular
# marrow without CLL cells", "negative for CLL") or after it ("CLL cells absent", "CLL infiltrate not seen");
# "uninvolved" / "not involved" say the marrow is clear.  Word boundaries matter: "uninvolved" is not "involved".
_DISEASE = re.compile(r"\b(?:cll\s+cells|cll|chronic lymphocytic|leuk\w*|lymphoma|infiltrat\w*|involv\w*|residual|"
                      r"clonal(?:\s+b(?:[- ]cells?)?)?|monoclonal\s+b\w*|nodul\w*|disease|lymphoid aggregates?|"
                      r"persist\w*|replaced by)")
_RESIDUAL = re.compile(r"\b(?:infiltrat\w*|involv\w*|residual|persist\w*|nodul\w*|cll cells|clonal b|monoclonal b|"
                       r"lymphoid aggregates?|replaced by)")
_PRE_NEG = re.compile(r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|nil|lack\s+of)\b")
_POST_NEG = re.compile(r"\b(?:absent|not\s+(?:seen|identified|detected|present|found)|none\s+seen|negative)\b")
_UNINVOLVED = re.compile(r"\buninvolved\b|\bnot\s+involved\b|\bno\s+involvement\b")


def parse_marrow(text: str) -> tuple[Marrow | None, Decimal | None]:
    """(finding, CLL cells %) from marrow text, clause by clause with negation; (None, pct) when it says neither."""
    t = text.lower()
    pct = None
    m = re.search(r"(\d+(?:\.\d+)?)\s*%\s*(?:of\s*)?(?:cll|leuk\w*|lymphoma|clonal|infiltrat|involv|b[- ]cells)", t)
    m = m or re.search(r"(?:cll|infiltrat\w*|involv\w*)[^.;%]{0,30}?(\d+(?:\.\d+)?)\s*%", t)
    if m:
        pct = Decimal(m.group(1))
    clear = residual = False
    for clause in re.split(r"[,;.\n()]|\band\b|\bbut\b|\bwith\b", t):
        if not clause.strip():
            continue
        if _UNINVOLVED.search(clause):
            clear = True
            continue
        hit = _DISEASE.search(clause)
        if hit is None:
            continue
        if _PRE_NEG.search(clause[:hit.start()]) or _POST_NEG.search(clause[hit.end():]):
            clear = True
        elif _RESIDUAL.search(clause):
            residual = True
    if residual or (pct is not None and pct > 0):
        return Marrow.RESIDUAL, pct
    if clear:
        return (Marrow.HYPOCELLULAR_CLEAR if "hypocellular" in t else Marrow.NORMOCELLULAR_CLEAR), pct
    return None, pct


def _read_marrow(c: _Collector, options: Mapping[str, Any] | None) -> None:
    record = c.record
    for obs in record.with_codes(_keys([MARROW_FINDING], options, input_name="marrow"), "Observation"):
        d = _dated(record, obs, "marrow finding")
        if d is None:
            continue
        coded = next((mw for k, mw in MARROW_CODES.items() if k in concept_keys(obs.get("valueCodeableConcept"))),
                     None)
        finding, pct = (coded, None) if coded else parse_marrow(_text(obs))
        if finding is None:
            record.issue(obs, "marrow finding skipped", "the finding could not be read (code or text)")
            continue
        c.put(d, "marrow", finding, ref_of(obs))
        if pct is not None:
            c.put(d, "marrow_cll_pct", pct, ref_of(obs))
    for lv in lab_series(record, [MARROW_INFILTRATION], PERCENT, input_name="marrow_cll_pct", options=options,
                         what="marrow CLL cells"):
        if lv.value > 100:
            record.issue(lv.resource, "marrow CLL cells skipped", "above 100 %")
            continue
        c.put(lv.date, "marrow_cll_pct", lv.value, lv.ref)
    for rep in reports(record):
        if not concept_keys(rep.get("code")) & MARROW_REPORTS:
            continue
        d = _dated(record, rep, "marrow report")
        pt = c.points.get(d) if d else None
        if d is None or (pt is not None and "marrow" in pt.values):
            continue
        finding, pct = parse_marrow(report_text(rep))
        if finding is None:
            record.issue(rep, "marrow report not used", "no CLL finding could be read from the text")
            continue
        c.put(d, "marrow", finding, ref_of(rep))
        if pct is not None and "marrow_cll_pct" not in (pt.values if pt else {}):
            c.put(d, "marrow_cll_pct", pct, ref_of(rep))


def _read_reported(c: _Collector, options: Mapping[str, Any] | None) -> None:
    record = c.record
    for obs in record.with_codes(_keys([REPORTED], options, input_name="iwcll_response"), "Observation"):
        d = _dated(record, obs, "recorded iwCLL category")
        if d is None:
            continue
        val = None
        for k in concept_keys(obs.get("valueCodeableConcept")):
            val = k.split("|", 1)[1]
        val = (val or _text(obs)).strip()
        low = val.lower()
        if low in ("baseline", "pre-treatment", "pretreatment", "pre-treatment baseline"):
            c.put(d, "_baseline", True, ref_of(obs))
            continue
        cat = {"cr": "CR", "cri": "CRi", "pr": "PR", "pr-l": "PR", "prl": "PR", "nodular pr": "PR", "npr": "PR",
               "sd": "SD", "pd": "PD", "ne": "NE"}.get(low.split(" ")[0].rstrip(",;"))
        if cat is None:
            record.issue(obs, "recorded iwCLL category skipped", f"'{val}' is not an iwCLL category")
            continue
        c.put(d, "reported_category", cat, ref_of(obs))


# --- therapy ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Therapy:
    name: str
    start: date | None
    end: date | None
    ongoing: bool
    bcr: bool
    ref: str | None


def _med_text(res: Resource) -> str:
    parts = [concept_text(res.get("medicationCodeableConcept"))]
    for c in items(dig(res, "medicationCodeableConcept", "coding")):
        if isinstance(c, dict) and isinstance(c.get("display"), str):
            parts.append(c["display"])
    med = res.get("medicationReference")
    if isinstance(med, dict) and isinstance(med.get("display"), str):
        parts.append(med["display"])
    parts += [n["text"] for n in items(res.get("note")) if isinstance(n, dict) and isinstance(n.get("text"), str)]
    return " ".join(p for p in parts if p).lower()


def _period(res: Resource) -> tuple[date | None, date | None]:
    start = end = None
    for di in items(res.get("dosageInstruction")) + items(res.get("dosage")):
        if isinstance(di, dict):
            bp = dig(di, "timing", "repeat", "boundsPeriod")
            if isinstance(bp, dict):
                start = start or parse_date(bp.get("start"))
                end = end or parse_date(bp.get("end"))
    for key in ("effectivePeriod",):
        p = res.get(key)
        if isinstance(p, dict):
            start = start or parse_date(p.get("start"))
            end = end or parse_date(p.get("end"))
    vp = dig(res, "dispenseRequest", "validityPeriod")
    if isinstance(vp, dict):
        end = end or parse_date(vp.get("end"))
    if res.get("resourceType") == "MedicationAdministration":
        d = parse_date(res.get("effectiveDateTime"))
        start, end = start or d, end or d
    start = start or parse_date(res.get("authoredOn")) or parse_date(res.get("effectiveDateTime"))
    return start, end


def therapies(record: PatientRecord) -> list[Therapy]:
    out = []
    for rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        for res in record.of_type(rtype):
            text = _med_text(res)
            if not text or not any(w in text for w in CLL_THERAPY):
                continue
            if res.get("status") in ("draft", "not-taken", "unknown") or (
                    res.get("intent") in ("proposal", "plan") and rtype == "MedicationRequest"):
                continue
            start, end = _period(res)
            ongoing = end is None and res.get("status") in ("active", "on-hold", "intended")
            out.append(Therapy(text, start, end, ongoing, any(w in text for w in BCR_INHIBITORS), ref_of(res)))
    return out


def _transfusion_dates(record: PatientRecord) -> list[date]:
    out = []
    for proc in record.of_type("Procedure"):
        text = concept_text(proc.get("code")).lower()
        if concept_keys(proc.get("code")) & TRANSFUSION_PROCEDURES or ("transfusion" in text and not re.search(
                r"platelet", text)):
            d = effective_date(proc)
            if d:
                out.append(d)
    for rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        for res in record.of_type(rtype):
            if any(w in _med_text(res) for w in ESA):
                start, end = _period(res)
                if start:
                    out.append(end or start)
    return out


# --- assembling --------------------------------------------------------------------------------------
@dataclass
class CllMapping:
    inputs: CllInputs | None
    missing: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    mrd_only: tuple[mrd_engine.MrdResult, ...] = ()


_TP_FIELDS = {"largest_node_mm", "node_spd_mm2", "spleen_mm", "spleen_normal", "nodes_normal", "liver_mm",
              "liver_normal", "constitutional_symptoms", "lymphocytes", "platelets", "hemoglobin_g_dl", "neutrophils", "transfused",
              "marrow", "marrow_cll_pct", "cytopenia_due_to_cll", "new_lesion", "transformation",
              "reported_category"}
_CLINICAL = _TP_FIELDS - {"reported_category", "transfused", "cytopenia_due_to_cll"}


def _groups(dates: list[date], window: int, cut: date | None) -> list[list[date]]:
    groups: list[list[date]] = []
    for d in sorted(dates):
        if groups:
            first = groups[-1][0]
            crosses = cut is not None and first < cut <= d
            if (d - first).days <= window and not crosses:
                groups[-1].append(d)
                continue
        groups.append([d])
    return groups


def map_iwcll(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
              options: Mapping[str, Any] | None = None) -> CllMapping:
    options = options or {}
    c = _Collector(record)
    _read_sizes(c, options)
    _read_flags(c, options)
    _read_counts(c, options)
    _read_marrow(c, options)
    _read_reported(c, options)
    raws = [r for r in mrd_map.read_mrd(record, options, routed.condition_ref if routed else None) if r.date <= as_of]
    mrd_results, _ = mrd_map.simple_results(raws, mrd_engine.Sample.PB)
    notes: list[str] = []

    points = {d: p for d, p in c.points.items() if d <= as_of and set(p.values) & (_TP_FIELDS | {"_baseline"})}
    if not any(set(p.values) & _CLINICAL for p in points.values()):
        if mrd_results:
            return CllMapping(None, notes=["No clinical iwCLL response data (nodes, organs, blood counts, marrow) in "
                                           "the record: only the MRD result is assessed."],
                              mrd_only=tuple(mrd_results))
        return CllMapping(None, ("iwCLL response data: lymph node size (largest diameter or SPD), spleen / liver, "
                                 "blood counts (lymphocytes LOINC 731-0, platelets 777-3, haemoglobin 718-7), "
                                 "marrow - none in the record",))

    ths = sorted(therapies(record), key=lambda t: t.start or date.min)
    last_date = max(points)
    started = [t.start for t in ths if t.start and t.start <= last_date]
    therapy_start = max(started) if started else None
    window = int(options.get("iwcll_assessment_window_days") or WINDOW_DAYS)
    marked = sorted(d for d, p in points.items() if p.values.get("_baseline"))
    cut = marked[-1] + timedelta(days=1) if marked else therapy_start
    groups = _groups(list(points), window, cut)

    def build(ds: list[date]) -> CllTimepoint:
        merged: dict[str, Any] = {}
        refs: list[str] = []
        for d in ds:
            for k, v in points[d].values.items():
                if k in _TP_FIELDS:
                    merged[k] = v
            refs += [r for r in points[d].refs if r not in refs]
        return CllTimepoint(date=ds[-1], refs=tuple(refs), **merged)

    baseline_group = None
    if marked:
        baseline_group = next(g for g in groups if marked[-1] in g)
        notes.append(f"Baseline: the assessment recorded as pre-treatment baseline ({baseline_group[-1].isoformat()}).")
    elif therapy_start is not None:
        before = [g for g in groups if g[-1] < therapy_start]
        if before:
            baseline_group = before[-1]
            notes.append(f"Baseline: the last assessment before the start of CLL therapy on "
                         f"{therapy_start.isoformat()} ({baseline_group[-1].isoformat()}).")
    after = [g for g in groups if baseline_group is None or g[0] > baseline_group[-1]]
    dropped = len(groups) - len(after) - (1 if baseline_group else 0)
    if dropped:
        notes.append(f"{dropped} assessment(s) before the baseline belong to an earlier line of therapy and were "
                     "not used.")
    if baseline_group is None:
        notes.append("No pre-treatment baseline identified (no assessment recorded as baseline and none before a "
                     "recorded CLL therapy start): PR / SD and baseline-referenced PD cannot be assessed.")
    baseline = build(baseline_group) if baseline_group else None
    tps = [build(g) for g in after]
    if not tps:
        return CllMapping(None, ("a response assessment after the pre-treatment baseline",), notes)

    current = tps[-1].date
    # transfusion status of each haemoglobin when not recorded
    tx_dates = _transfusion_dates(record)
    for i, tp in enumerate(tps):
        if tp.transfused is None and tp.hemoglobin_g_dl is not None and tx_dates:
            recent = [d for d in tx_dates if tp.date - timedelta(days=TRANSFUSION_DAYS) <= d <= tp.date]
            if recent:
                tps[i] = replace(tp, transfused=True)
                notes.append(f"Red-cell transfusion or ESA on {max(recent).isoformat()} within {TRANSFUSION_DAYS} "
                             f"days before the haemoglobin of {tp.date.isoformat()}: Hb taken as transfused.")
    bcr = [t for t in ths if t.bcr and t.start and t.start <= current and (t.end is None or t.end >= current)]
    lines = [t for t in ths if (t.start is None or t.start <= current)]
    ongoing = [t for t in lines if t.ongoing]
    therapy_end = None
    if not ongoing:
        ends = [t.end for t in lines if t.end and t.end <= current]
        therapy_end = max(ends) if ends else None
    if therapy_end:
        notes.append(f"End of therapy taken from the medication record: {therapy_end.isoformat()}.")
    if bcr:
        notes.append("On a BCR-pathway inhibitor at the assessment (" + bcr[-1].name[:60] + ").")
    inputs = CllInputs(assessments=tuple(tps), baseline=baseline, therapy_end=therapy_end, bcr_inhibitor=bool(bcr),
                       mrd=tuple(mrd_results))
    return CllMapping(inputs, (), notes)
