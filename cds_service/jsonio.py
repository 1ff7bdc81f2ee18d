"""Fast JSON in and out (orjson), with Decimal and date handled the one way cards need."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from fhir_mappings.rawjson import lazy_value


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


JSONDecodeError = orjson.JSONDecodeError


class _HookRequest(msgspec.Struct):
    """The members of a CDS Hooks request the service reads; ``prefetch`` values kept as raw JSON."""

    hook: Any = msgspec.UNSET
    hookInstance: Any = msgspec.UNSET
    fhirServer: Any = msgspec.UNSET
    fhirAuthorization: Any = msgspec.UNSET
    context: Any = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | None | msgspec.UnsetType = msgspec.UNSET


_HOOK_REQUEST = msgspec.json.Decoder(_HookRequest)
_HOOK_FIELDS = _HookRequest.__struct_fields__


def loads_hook_request(data: bytes) -> Any:
    """A hook request body, with each prefetch Bundle left lazy (fhir_mappings/rawjson.py ``LazyBundle``).

    One pass validates the whole body as JSON and decodes the request's members, except that each prefetch value
    is kept as its JSON text; the Bundles among them are then read entry by entry (heads only). Errors are
    orjson's (the messages the service has always given). A body that is not an object, or whose ``prefetch`` is
    not an object, is decoded plainly and meets the usual checks. Members the service does not read (e.g.
    ``extension``) are not kept.
    """
    try:
        req = _HOOK_REQUEST.decode(data)
    except msgspec.ValidationError:  # valid JSON of another shape: decoded plainly, the caller's checks answer
        return orjson.loads(data)
    except (msgspec.DecodeError, RecursionError):  # malformed or nested too deep: orjson's error message and
        return orjson.loads(data)                   # position (or its answer, should the two differ)
    body: dict[str, Any] = {}
    for name in _HOOK_FIELDS:
        value = getattr(req, name)
        if value is not msgspec.UNSET:
            body[name] = value
    prefetch = body.get("prefetch")
    if prefetch:  # every value was checked (JSON, depth) by the pass above: nothing below can fail on the text
        body["prefetch"] = {key: lazy_value(value) for key, value in prefetch.items()}
    return body
