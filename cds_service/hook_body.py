"""Decoding a hook request: one pass over the body, prefetch Bundles left lazy (fhir_mappings/rawjson.py).

The body is validated as JSON in full, but only the request's own members, each prefetch Bundle's envelope and
each resource's head become Python objects; a resource is decoded the first time a criterion reads it. Bodies of
another shape (not an object, a ``prefetch`` that is not one, a prefetch value that is not a Bundle, too deep...)
are decoded in the plainer ways below, so every check downstream meets exactly what it always met; malformed
JSON gets orjson's message, as before.
"""
from __future__ import annotations

from typing import Any

import msgspec
import orjson

from cds_service.prefetch import TEMPLATE_KEYS
from fhir_mappings.rawjson import Bundle, BundleHeads, decode, lazy_bundle, lazy_value

_UNSET = msgspec.UNSET
_PATIENT_KEY = "patient"  # the one template that is a read (a resource), not a search (a Bundle)

# the prefetch keys the service declares: the Patient as raw JSON, every search as a Bundle; other keys are not
# read by the service and are skipped unparsed (still validated as JSON)
_Prefetch = msgspec.defstruct(
    "_Prefetch",
    [(k, msgspec.Raw | msgspec.UnsetType, _UNSET) if k == _PATIENT_KEY else (k, Bundle | None | msgspec.UnsetType,
                                                                            _UNSET)
     for k in TEMPLATE_KEYS],
)


class _HookRequest(msgspec.Struct):
    """The members of a CDS Hooks request the service reads, with typed prefetch."""

    hook: Any = _UNSET
    hookInstance: Any = _UNSET
    fhirServer: Any = _UNSET
    fhirAuthorization: Any = _UNSET
    context: Any = _UNSET
    prefetch: _Prefetch | None | msgspec.UnsetType = _UNSET  # type: ignore[valid-type]


class _HookRequestRawPrefetch(_HookRequest):
    prefetch: dict[str, msgspec.Raw] | None | msgspec.UnsetType = _UNSET  # type: ignore[assignment]


# The same request read for its prefetch Bundles' resource heads only (every search key; the rest is skipped): one
# decode of the whole body gives every entry's head, where decoding each entry's raw JSON on its own cost a call
# per resource. It fails (ValidationError) when any resource is not an object or has a code of another shape:
# then each entry is read on its own (rawjson.lazy_bundle), as before.
_PrefetchHeads = msgspec.defstruct(
    "_PrefetchHeads", [(k, BundleHeads | None, None) for k in TEMPLATE_KEYS if k != _PATIENT_KEY], gc=False)
_RequestHeads = msgspec.defstruct("_RequestHeads", [("prefetch", _PrefetchHeads | None, None)], gc=False)

_TYPED = msgspec.json.Decoder(_HookRequest)
_HEADS = msgspec.json.Decoder(_RequestHeads)
_RAW_PREFETCH = msgspec.json.Decoder(_HookRequestRawPrefetch)
_FIELDS = _HookRequest.__struct_fields__


def _members(req: _HookRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(req, name)
        if value is not _UNSET:
            out[name] = value
    return out


def _typed_prefetch(prefetch: Any, data: bytes) -> dict[str, Any] | None:
    """The prefetch dict from the typed pass, or None when a search key holds something other than a Bundle."""
    heads = None
    if any(getattr(prefetch, key) not in (_UNSET, None) for key in TEMPLATE_KEYS if key != _PATIENT_KEY):
        try:
            heads = _HEADS.decode(data).prefetch
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # a resource of another shape
            heads = None                                                         # (or anything odd): each entry on its own
    out: dict[str, Any] = {}
    for key in TEMPLATE_KEYS:
        value = getattr(prefetch, key)
        if value is _UNSET:
            continue
        if key == _PATIENT_KEY:
            out[key] = decode(value)
        elif value is None:
            out[key] = None
        elif value.resourceType == "Bundle":
            out[key] = lazy_bundle(value, getattr(heads, key) if heads is not None else None)
        else:  # a resource or an OperationOutcome where a Bundle was expected: read it whole, as before
            return None
    return out


def loads_hook_request(data: bytes) -> Any:
    """A hook request body as a dict, each prefetch Bundle a ``LazyBundle`` (see the module docstring).

    Members the service does not read (``extension``, undeclared prefetch keys) are not kept.
    """
    try:
        req = _TYPED.decode(data)
    except (msgspec.DecodeError, RecursionError):  # malformed, or nested too deep: orjson's message and position
        return orjson.loads(data)                   # (or its answer, should the two differ)
    except msgspec.ValidationError:  # valid JSON of another shape
        req = None
    body = _members(req) if req is not None else None
    if body is not None and isinstance(req.prefetch, msgspec.Struct):
        prefetch = _typed_prefetch(req.prefetch, data)
        if prefetch is not None:
            body["prefetch"] = prefetch
            return body
        body = None
    if body is None:  # a prefetch value of another shape: each value on its own
        try:
            req = _RAW_PREFETCH.decode(data)
        except msgspec.ValidationError:  # not an object, or a prefetch that is not one: the plain decode
            return orjson.loads(data)
        body = _members(req)
    if body.get("prefetch"):
        body["prefetch"] = {key: lazy_value(value) for key, value in body["prefetch"].items()}
    return body
