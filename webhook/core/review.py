"""The AdmissionReview wire format (admission.k8s.io/v1): decode requests, build responses.

Two kinds of failure are kept apart, as the API server treats them differently:

* a body that is not a well-formed AdmissionReview is the caller's bug: ``BadReview`` (the
  HTTP shell answers 400 with the message, so the API server logs something useful);
* anything about the *object* (odd fields, bad images, missing secrets) is decided by the
  core and answered 200 ``allowed: true`` with warnings.

The response always echoes ``uid`` and ``apiVersion``/``kind``; ``patch``/``patchType`` are
present only when there is something to patch (the API server rejects a ``patchType``
without a patch).

Bytes to JSON and back is orjson (``parse_body``, ``encode``): at saturation the standard
library's ``json.loads`` of a 4.9 KB review was ~9 % of a worker's CPU. orjson is stricter
than the standard library, and only where the API server never is: it refuses ``NaN``,
lone surrogates and nesting deeper than 1,024 (a 400, as any other malformed body).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import orjson

__all__ = [
    "ADMISSION_API_VERSION",
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReviewResponse",
    "BadReview",
    "JsonPatchOp",
    "Status",
    "allow",
    "decode_request",
    "deny",
    "encode",
    "parse_body",
    "read_uid",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_KIND = "AdmissionReview"


class JsonPatchOp(TypedDict):
    """One RFC 6902 operation; we only ever add."""

    op: Literal["add"]
    path: str
    value: Any


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """The parts of an AdmissionReview request the decision depends on."""

    kind: str
    """``Pod`` or ``ServiceAccount`` (anything else is ignored)."""
    operation: str
    namespace: str
    """Request namespace: authoritative, also for ``generateName`` pods with no namespace."""
    object: Mapping[str, Any]
    old_object: Mapping[str, Any] | None = None
    sub_resource: str = ""
    dry_run: bool = False
    uid: str = ""


class Status(TypedDict):
    code: int
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    status: NotRequired[Status]


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


class BadReview(ValueError):
    """The body is not an AdmissionReview we can answer; the message says why."""


def read_uid(document: object) -> str:
    """Best-effort uid from anything that looks like a review (for echoing in errors)."""
    if isinstance(document, Mapping):
        request = document.get("request")
        if isinstance(request, Mapping) and isinstance(request.get("uid"), str):
            return str(request["uid"])
    return ""


def decode_request(document: object) -> AdmissionRequest:
    """Validate the envelope and extract what the core needs; raise ``BadReview``."""
    if not isinstance(document, Mapping):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if document.get("apiVersion") != ADMISSION_API_VERSION:
        raise BadReview(
            f"apiVersion must be {ADMISSION_API_VERSION!r}, got {document.get('apiVersion')!r} "
            "(set admissionReviewVersions: [v1])"
        )
    if document.get("kind") != ADMISSION_KIND:
        raise BadReview(f"kind must be {ADMISSION_KIND!r}, got {document.get('kind')!r}")
    request = document.get("request")
    if not isinstance(request, Mapping):
        raise BadReview("request must be an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid must be a non-empty string")
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or not isinstance(kind.get("kind"), str):
        raise BadReview("request.kind must be an object with a string kind")
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise BadReview("request.operation must be a string")
    namespace = _optional_string(request, "namespace")
    sub_resource = _optional_string(request, "subResource")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, Mapping):
        raise BadReview("request.object must be an object or null")
    old = request.get("oldObject")
    if old is not None and not isinstance(old, Mapping):
        raise BadReview("request.oldObject must be an object or null")
    dry_run = request.get("dryRun", False)
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadReview("request.dryRun must be a boolean")
    return AdmissionRequest(
        kind=str(kind["kind"]),
        operation=operation,
        namespace=namespace,
        object=obj or {},
        old_object=old,
        sub_resource=sub_resource,
        dry_run=bool(dry_run),
        uid=uid,
    )


def _optional_string(request: Mapping[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadReview(f"request.{key} must be a string")
    return value


def allow(
    uid: str, ops: Sequence[JsonPatchOp] = (), warnings: Sequence[str] = ()
) -> AdmissionReviewResponse:
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(list(ops))).decode()
    if warnings:
        response["warnings"] = list(warnings)
    return _envelope(response)


def deny(
    uid: str, message: str, warnings: Sequence[str] = (), code: int = 403
) -> AdmissionReviewResponse:
    response: AdmissionResponse = {
        "uid": uid,
        "allowed": False,
        "status": {"code": code, "message": message},
    }
    if warnings:
        response["warnings"] = list(warnings)
    return _envelope(response)


def parse_body(body: bytes) -> Any:
    """The JSON document in ``body``; ``ValueError`` (with a position) when it is not JSON."""
    return orjson.loads(body)


def encode(document: Mapping[str, Any]) -> bytes:
    """A response document (an AdmissionReview or an error body) as compact JSON bytes."""
    return orjson.dumps(document)


def _envelope(response: AdmissionResponse) -> AdmissionReviewResponse:
    return {"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND, "response": response}
