"""Synthetic FHIR data: builders, the public-vignette converter and the sandbox patient library."""
