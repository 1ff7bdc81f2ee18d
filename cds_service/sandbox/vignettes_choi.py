"""Choi (GIST) vignettes -> FHIR (docs/fhir-inputs-choi.md).

A GIST Condition (ICD-10-CM C49.A0) on imatinib; per CT an imaging report grouping TumorSize per lesion (longest
diameter, mean attenuation component) or the reported sum of longest diameters and mean attenuation; new lesions,
new or growing intratumoural nodules, progression of non-measurable disease and symptomatic deterioration.
"""
from __future__ import annotations

from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept
from cds_service.sandbox.imaging_facts import (
    HU_SUFFIXES,
    field,
    is_nodal,
    new_lesion_items,
    quantity,
    timepoints,
    truthy,
)
from cds_service.sandbox.vignettes import Vignette, _pid, check_imaging_top, converter, gather_timepoints
from fhir_mappings import codes
from fhir_mappings.choi import MODIFIED_CHOI
from fhir_mappings.imaging_series import (
    INTRATUMORAL_NODULE,
    MEAN_ATTENUATION,
    SUM_LONGEST_DIAMETERS,
    SYMPTOMATIC_DETERIORATION,
)
from fhir_mappings.record import UCUM

SLD_STEMS = ("sld", "sum_longest_diameters", "sum_of_longest_diameters", "target_sum", "sum_of_diameters", "sum")
SIZE_STEMS = ("ld", "longest_diameter", "size", "diameter")
HU_STEMS = ("mean_attenuation", "attenuation", "mean_density", "density", "mean_ct_attenuation", "ct_attenuation",
            "mean", "hu")
NODULE_FIELDS = ("new_intratumoral_nodules", "new_intratumoural_nodules", "intratumoral_nodules",
                 "intratumoural_nodules", "intratumoral_nodule", "intratumoural_nodule", "new_intratumoral_nodule",
                 "nodule_growth", "intratumoral_nodule_growth")


def _hu(d: dict) -> tuple[Any, str] | None:
    return quantity(d, HU_STEMS, suffixes=HU_SUFFIXES, default_unit="[hnsf'U]")


@converter("CHOI", "Choi (GIST)")
def choi(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C49.A0", snomed="420120006", text="Gastrointestinal stromal tumour", onset="2023-10-01")
    check_imaging_top(v, inp, "Choi")
    tps = timepoints(gather_timepoints(v, inp))
    first = tps[0]["date"] if tps else "2024-01-01"
    p.medication(field(inp, "treatment_start", default=first), str(field(inp, "drug", "treatment", default="imatinib")))
    if truthy(field(inp, "modified", "modified_choi")):
        p.observation(MODIFIED_CHOI, first, value_bool=True, category="survey", display="Modified Choi criteria")
        p.card_criteria = "modified Choi"
    bodies: dict[str, dict] = {}

    def body(lesion_id: str, site: str, nodal: bool) -> dict:
        if lesion_id not in bodies:
            bodies[lesion_id] = p.lesion(lesion_id, site or "unspecified", nodal=nodal)
        return bodies[lesion_id]

    for k, tp in enumerate(tps):
        when = tp["date"]
        results = []
        for i, t in enumerate(field(tp, "lesions", "targets", "target_lesions", default=[]) or []):
            lid = str(t.get("id", f"T{i + 1}"))
            size = quantity(t, SIZE_STEMS)
            kwargs: dict[str, Any] = {"role": "target"}
            if size is None:
                kwargs["not_assessed"] = True
            else:
                kwargs.update(longest_mm=size[0], unit=size[1])
            obs = p.tumor_size(body(lid, t.get("site", ""), is_nodal(t)), when, **kwargs)
            hu = _hu(t)
            if hu is not None:
                obs["component"].append({"code": concept(MEAN_ATTENUATION, display="Mean CT attenuation"),
                                         "valueQuantity": {"value": hu[0], "unit": "HU", "system": UCUM,
                                                           "code": hu[1]}})
            results.append(obs)
        if not results:
            sld = quantity(tp, SLD_STEMS)
            if sld is not None:
                results.append(p.observation(SUM_LONGEST_DIAMETERS, when, value=sld[0], unit=sld[1], category="imaging",
                                             display="Sum of longest diameters of target lesions (reported)"))
        if not any("attenuation" in str(r.get("component", "")) for r in results):
            hu = _hu(tp)
            if hu is not None:
                results.append(p.observation(MEAN_ATTENUATION, when, value=hu[0], unit=hu[1], category="imaging",
                                             display="Mean CT attenuation of target lesions"))
        if k > 0:
            items, word = new_lesion_items(field(tp, "new_lesions", "new_lesion"))
            for i, n in enumerate(items):
                size = quantity(n, SIZE_STEMS)
                kw: dict[str, Any] = {"role": "new"}
                if size is not None:
                    kw.update(longest_mm=size[0], unit=size[1])
                results.append(p.tumor_size(body(str(n.get("id", f"NL{i + 1}")), n.get("site", ""), is_nodal(n)),
                                            when, **kw))
            if word is not None and not items:
                results.append(p.observation(codes.NEW_LESION, when, value_code="yes" if word == "another" else word,
                                             category="imaging"))
            nodules = field(tp, *NODULE_FIELDS)
            if nodules is not None:
                results.append(p.observation(INTRATUMORAL_NODULE, when, value_bool=truthy(nodules), category="imaging",
                                             display="New or enlarging intratumoural nodule"))
            nt = field(tp, "non_target", "non_measurable_disease")
            if truthy(field(tp, "non_measurable_progression")) or (
                    isinstance(nt, str) and ("progress" in nt.lower() or nt.strip().lower().startswith("pd"))):
                results.append(p.observation(codes.NON_TARGET_RESPONSE, when, value_code="PD", category="imaging"))
            if truthy(field(tp, "symptomatic_deterioration")):
                results.append(p.observation(SYMPTOMATIC_DETERIORATION, when, value_bool=True, category="exam",
                                             display="Symptomatic deterioration attributed to tumour progression"))
        p.report(when, results=results)
    return p
