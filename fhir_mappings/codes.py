"""Codes the mappers read (LOINC, SNOMED CT, and the project's own code system where no standard code exists).

Confidence grades and sources are in shared/reference/codes.md; representations are documented with
examples in docs/fhir-inputs.md.
"""
from __future__ import annotations

from fhir_mappings.record import LOCAL, LOINC, SNOMED

# mCODE TumorSize (codes.md §3.1, grade A)
TUMOR_SIZE = f"{LOINC}|21889-1"
LONGEST_DIMENSION = f"{LOINC}|33728-7"
OTHER_DIMENSION = f"{LOINC}|33729-5"

# The project's code system for inputs with no standard code (docs/fhir-inputs.md)
LESION_ROLE = f"{LOCAL}|lesion-role"              # component: valueCodeableConcept target | non-target | new
NODAL = f"{LOCAL}|nodal-lesion"                   # component: valueBoolean
SHORT_AXIS = f"{LOCAL}|short-axis"                # component: valueQuantity (a node's short axis)
TOO_SMALL = f"{LOCAL}|too-small-to-measure"       # value of a dimension component / interpretation
NON_TARGET_RESPONSE = f"{LOCAL}|recist-non-target-response"  # Observation: CR | non-CR/non-PD | PD | NE
NEW_LESION = f"{LOCAL}|recist-new-lesion"         # Observation: valueBoolean or yes | no | equivocal
TIMEPOINT_RESPONSE = f"{LOCAL}|recist-timepoint-response"  # Observation: reported overall response CR/PR/SD/PD/NE
TRIAL_CONFIRMATION = f"{LOCAL}|response-confirmation-required"  # Observation/valueBoolean (protocol setting)

LYMPH_NODE_SNOMED = {f"{SNOMED}|59441001", f"{SNOMED}|181756000"}  # Structure of lymph node; Lymph node structure

RECIST_OBSERVATION_CODES = (TUMOR_SIZE, NON_TARGET_RESPONSE, NEW_LESION, TIMEPOINT_RESPONSE, TRIAL_CONFIRMATION)
