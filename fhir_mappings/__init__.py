"""FHIR R4 JSON -> typed criteria inputs (the dataclasses of ``rules``), with the issues found on the way.

Knows FHIR, codes and units; knows nothing of HTTP. Never raises on bad clinical data: it records a
:class:`~fhir_mappings.record.MappingIssue` and moves on.
"""
