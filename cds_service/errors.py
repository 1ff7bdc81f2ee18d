"""OperationOutcome bodies for every non-2xx answer (CDS Hooks 3.0 ballot recommends them; harmless in 2.0)."""
from __future__ import annotations

from typing import Iterable

from flask import Response

from cds_service.jsonio import dumps


class HookError(Exception):
    """An error the client should see, with its HTTP status and OperationOutcome issues."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: Iterable[str] = ()) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = tuple(expression)


def operation_outcome(issues: Iterable[tuple[str, str, str, tuple[str, ...]]]) -> dict:
    out = []
    for severity, code, diagnostics, expression in issues:
        issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
        if expression:
            issue["expression"] = list(expression)
        out.append(issue)
    return {"resourceType": "OperationOutcome", "issue": out}


FHIR_JSON = "application/fhir+json"


def error_body(code: str, diagnostics: str, expression: Iterable[str] = (),
               more: Iterable[tuple[str, str, str, tuple[str, ...]]] = ()) -> bytes:
    """The OperationOutcome of an error answer, encoded (the hook endpoint answers outside Flask)."""
    return dumps(operation_outcome([("error", code, diagnostics, tuple(expression)), *more]))


def error_response(status: int, code: str, diagnostics: str, expression: Iterable[str] = (),
                   more: Iterable[tuple[str, str, str, tuple[str, ...]]] = ()) -> Response:
    return Response(error_body(code, diagnostics, expression, more), status=status, mimetype=FHIR_JSON)
