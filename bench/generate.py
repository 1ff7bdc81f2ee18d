"""Deterministic CDS Hooks ``patient-view`` requests for one oncology patient with N Observations.

The patient has breast cancer (C50.911, with an AJCC stage), bone metastases and hypertension. Of every ten
Observations one is an mCODE TumorSize (LOINC 21889-1, with longest-diameter / short-axis components, focus on a
BodyStructure, grouped by a CT DiagnosticReport), six are laboratory results with LOINC codes and UCUM units
(tumour markers, CBC, CMP, LDH) and three are vital signs (blood pressure with components, weight, heart rate...)
that no criteria set reads and the service has to filter out. There are N/10 DiagnosticReports, alternating CT
reports (result[] -> the TumorSize Observations of that scan, conclusion text, SNOMED conclusionCode) and CMP
panels (result[] -> the chemistry of that day). Every resource carries the fields a US Core EHR sends (meta.profile,
identifier, subject display, encounter, issued, performer, interpretation, referenceRange), so the body is about
1.4 KB per Observation, as in shared/reference/performance.md §2.1.

    .venv/bin/python bench/generate.py 1000 > /tmp/req-1000.json
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cds_service.sandbox.builders import CATEGORY_SYSTEM, PatientBuilder, concept, qty  # noqa: E402
from fhir_mappings.record import LOINC, SNOMED, UCUM  # noqa: E402

Json = dict[str, Any]

PATIENT_ID = "bench-onc-1"
START = datetime(2016, 1, 4, 8, 30)
END = datetime(2025, 12, 15, 8, 30)
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LAB_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
VITAL_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"
SIZE_PROFILE = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-size"

# (LOINC, display, UCUM unit, typical value, low, high, in a CMP panel)
LABS: tuple[tuple[str, str, str, float, float | None, float | None, bool], ...] = (
    ("2039-6", "Carcinoembryonic Ag [Mass/volume] in Serum or Plasma", "ng/mL", 3.1, None, 5.0, False),
    ("6875-9", "Cancer Ag 15-3 [Units/volume] in Serum or Plasma", "U/mL", 28.0, None, 30.0, False),
    ("10334-1", "Cancer Ag 125 [Units/volume] in Serum or Plasma", "U/mL", 18.0, None, 35.0, False),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.4, 12.0, 16.0, False),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 5.8, 4.0, 11.0, False),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 240.0, 150.0, 400.0, False),
    ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", 3.4, 1.8, 7.7, False),
    ("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 190.0, 140.0, 280.0,
     False),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.9, 0.6, 1.1, True),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 24.0, 7.0, 35.0,
     True),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 22.0, 8.0, 33.0,
     True),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 88.0, 44.0, 147.0, True),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 0.1, 1.2, True),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 4.1, 3.5, 5.0, True),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.4, 8.5, 10.2, True),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 140.0, 135.0, 145.0, True),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.2, 3.5, 5.1, True),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 96.0, 70.0, 99.0, True),
)
# (LOINC, display, UCUM unit, typical value); blood pressure is a panel with two components
VITALS: tuple[tuple[str, str, str, float], ...] = (
    ("85354-9", "Blood pressure panel with all children optional", "mm[Hg]", 0.0),
    ("29463-7", "Body weight", "kg", 68.0),
    ("8867-4", "Heart rate", "/min", 74.0),
    ("8310-5", "Body temperature", "Cel", 36.8),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 97.0),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 24.9),
)
# one lesion in the liver (long axis) and one node (short axis): a partial response, then stable disease
LESIONS = (("T1", "Liver segment VII", False, 46.0, 27.0), ("T2", "Left axillary lymph node", True, 24.0, 12.0))
CT_CODE = (LOINC, "24627-2", "CT Chest")
CMP_CODE = (LOINC, "24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma")


def _wobble(i: int, spread: float) -> float:
    """A deterministic, zero-mean wobble in [-spread, +spread] (no random module: same bytes every run)."""
    return spread * (((i * 7919) % 201) - 100) / 100.0


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"


def _decorate(res: Json, i: int, when: datetime, profile: str, display: str) -> Json:
    """Add the fields a US Core EHR sends that no criteria set reads (ids, provenance, encounter...)."""
    res["meta"] = {"profile": [profile], "lastUpdated": _stamp(when + timedelta(hours=3))}
    res["identifier"] = [{"use": "official", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268",
                          "value": f"LAB-{100000 + i:08d}"}]
    res["subject"] = {"reference": f"Patient/{PATIENT_ID}", "display": "Synthetic Oncology"}
    res["encounter"] = {"reference": f"Encounter/{PATIENT_ID}-enc-{i // 10}"}
    res["issued"] = (when + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"
    res["performer"] = [{"reference": "Organization/regional-oncology-lab", "display": "Regional Oncology Lab"}]
    res["code"]["text"] = display
    return res


def build_patient(n_observations: int) -> PatientBuilder:
    """The synthetic patient with ``n_observations`` Observations (N/10 TumorSize, the rest labs and vitals)."""
    if n_observations < 10:
        raise ValueError("n_observations must be at least 10 (one imaging time point per 20 Observations)")
    p = PatientBuilder(PATIENT_ID, name="Oncology", birth_date="1961-05-17", gender="female")
    breast = p.condition(icd10="C50.911", snomed="254837009", onset="2015-11-20",
                         text="Malignant neoplasm of unspecified site of right female breast")
    breast["stage"] = [{"summary": concept(SNOMED, "1222806003", "American Joint Committee on Cancer stage IIIA"),
                        "type": concept(SNOMED, "1222593009", "AJCC clinical stage group")}]
    p.condition(icd10="C79.51", text="Secondary malignant neoplasm of bone", onset="2015-12-10")
    p.condition(icd10="I10", snomed="38341003", text="Essential (primary) hypertension", onset="2009-03-02")
    p.medication("2016-01-11", "Paclitaxel 80 mg/m2 weekly", rxnorm="56946")
    bodies = {lid: p.lesion(lid, site, nodal=nodal) for lid, site, nodal, _, _ in LESIONS}

    step = (END - START) / n_observations
    n_timepoints = max(1, n_observations // 20)
    ct_pending: list[Json] = []
    cmp_pending: list[Json] = []
    made = 0
    tp = 0
    lab_i = vital_i = 0
    for i in range(n_observations):
        when = START + step * i
        slot = i % 10
        decade = i // 10
        if slot == 0:  # TumorSize: one per ten Observations, the two lesions of one CT in consecutive tens
            lid, site, nodal, base, nadir = LESIONS[decade % 2]
            frac = min(1.0, tp / max(1, n_timepoints // 4))  # shrink over the first quarter, then plateau
            size = round(base - (base - nadir) * frac + (_wobble(i, 0.8) if tp else 0.0), 1)
            kwargs: dict[str, Any] = {"short_axis_mm": size, "longest_mm": round(size * 1.4, 1)} if nodal else \
                {"longest_mm": size}
            res = p.tumor_size(bodies[lid], _stamp(when), **kwargs)
            _decorate(res, i, when, SIZE_PROFILE, "Tumor size")
            res["bodySite"] = concept(SNOMED, "59441001" if nodal else "10200004", site)
            res["method"] = concept(SNOMED, "77477000", "Computed tomography")
            ct_pending.append(res)
        elif slot in (1, 3, 4, 6, 8, 9):  # laboratory
            code, display, unit, typical, low, high, in_cmp = LABS[lab_i % len(LABS)]
            value = round(typical + _wobble(lab_i, typical * 0.15), 2)
            lab_i += 1
            res = p.observation(f"{LOINC}|{code}", _stamp(when), display=display, value=value, unit=unit)
            _decorate(res, i, when, LAB_PROFILE, display)
            flag = "H" if high is not None and value > high else ("L" if low is not None and value < low else "N")
            res["interpretation"] = [concept(INTERP, flag, {"H": "High", "L": "Low", "N": "Normal"}[flag])]
            rr: Json = {"text": f"{low}-{high} {unit}" if low is not None else f"<{high} {unit}"}
            if low is not None:
                rr["low"] = qty(low, unit)
            if high is not None:
                rr["high"] = qty(high, unit)
            res["referenceRange"] = [rr]
            if in_cmp:
                cmp_pending.append(res)
        else:  # vital signs (slots 2, 5 and 7): read by no criteria set
            code, display, unit, typical = VITALS[vital_i % len(VITALS)]
            vital_i += 1
            if code == "85354-9":
                comps = [{"code": concept(LOINC, "8480-6", "Systolic blood pressure"),
                          "valueQuantity": qty(round(128 + _wobble(i, 12)), unit)},
                         {"code": concept(LOINC, "8462-4", "Diastolic blood pressure"),
                          "valueQuantity": qty(round(79 + _wobble(i + 3, 8)), unit)}]
                res = p.observation(f"{LOINC}|{code}", _stamp(when), display=display, category="vital-signs",
                                    components=comps)
            else:
                res = p.observation(f"{LOINC}|{code}", _stamp(when), display=display, category="vital-signs",
                                    value=round(typical + _wobble(i, typical * 0.03), 1), unit=unit)
            _decorate(res, i, when, VITAL_PROFILE, display)
        made += 1
        # one DiagnosticReport per ten Observations, alternating CMP panels and CT reports (one CT per time point)
        if slot == 9:
            day = when.date().isoformat()
            if decade % 2 == 1 and ct_pending:
                tp += 1
                rep = p.report(day, category="radiology", code=CT_CODE, results=ct_pending,
                               conclusion="Target lesions smaller than on the prior study. No new lesions.")
                rep["conclusionCode"] = [concept(SNOMED, "268910001", "Patient's condition improved")]
                ct_pending = []
            elif cmp_pending:
                rep = p.report(day, category="laboratory", code=CMP_CODE, results=cmp_pending)
                cmp_pending = []
            else:
                continue
            rep["subject"] = {"reference": f"Patient/{PATIENT_ID}", "display": "Synthetic Oncology"}
            rep["performer"] = [{"reference": "Organization/regional-oncology-lab", "display": "Regional Oncology"}]
            rep["encounter"] = {"reference": f"Encounter/{PATIENT_ID}-enc-{i // 10}"}
    assert made == n_observations
    return p


def build_request(n_observations: int) -> Json:
    """A CDS Hooks 2.0 ``patient-view`` request with every prefetch key of the remission-status service."""
    req = build_patient(n_observations).hook_request(hook_instance=f"d6a3b1de-bench-{n_observations:05d}")
    req["prefetch"]["observations"]["link"] = [{"relation": "self",
                                                "url": f"Observation?patient={PATIENT_ID}&_count=10000"}]
    return req


def build_body(n_observations: int) -> bytes:
    import orjson

    return orjson.dumps(build_request(n_observations))


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 100
    sys.stdout.buffer.write(build_body(n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
