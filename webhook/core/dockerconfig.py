"""Pull-secret decoding with the kubelet's acceptance rules, and nothing that leaks it.

The kubelet (``credentialprovider/secrets.MakeDockerKeyring``) uses a Secret only when its
type and data key are paired (``kubernetes.io/dockerconfigjson`` + ``.dockerconfigjson`` with
``{"auths": {...}}``, or ``kubernetes.io/dockercfg`` + ``.dockercfg`` with a bare map); any other
Secret is silently ignored. A payload that is not JSON, or an entry whose ``auth`` is not
base64 of ``user:password``, makes *every* pull of the pod fail. We must never inject such a
secret, so each case gets a precise reason here.

Credential values are held only in ``DockerConfig.entries``, which is excluded from ``repr``,
and no error message ever quotes a value: messages name keys and fields only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

__all__ = [
    "DOCKERCFG_KEY",
    "DOCKERCFG_TYPE",
    "DOCKERCONFIGJSON_KEY",
    "DOCKERCONFIGJSON_TYPE",
    "DockerConfig",
    "InvalidPullSecret",
    "PullSecretProblem",
    "encode_secret_data",
    "from_entries",
    "parse_docker_config",
    "parse_secret",
]

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
DOCKERCFG_TYPE = "kubernetes.io/dockercfg"
DOCKERCFG_KEY = ".dockercfg"

Format = Literal["dockerconfigjson", "dockercfg"]
_KEY_FOR_TYPE: dict[str, tuple[Format, str]] = {
    DOCKERCONFIGJSON_TYPE: ("dockerconfigjson", DOCKERCONFIGJSON_KEY),
    DOCKERCFG_TYPE: ("dockercfg", DOCKERCFG_KEY),
}


class PullSecretProblem(Enum):
    """Why a Secret cannot serve as a pull secret; the value is a short stable label."""

    WRONG_TYPE = "wrong-type"
    """Not a docker config Secret type: the kubelet ignores it."""
    MISSING_KEY = "missing-key"
    """Right type, but the paired data key is absent or empty: the kubelet ignores it."""
    BAD_ENCODING = "bad-encoding"
    """``data`` value is not base64 (cannot come from the API server, only from files)."""
    BAD_JSON = "bad-json"
    """Payload is not the JSON shape the kubelet decodes: every pull of the pod fails."""
    BAD_AUTH = "bad-auth"
    """An ``auth`` field is not base64 of ``user:password``: every pull of the pod fails."""


class InvalidPullSecret(ValueError):
    """A Secret the kubelet would ignore or choke on. The message never contains secret data."""

    def __init__(self, problem: PullSecretProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class DockerConfig:
    """The decoded credential map of one pull secret."""

    format: Format
    """Which of the two kubelet formats the secret uses."""
    keys: tuple[str, ...]
    """``auths`` keys exactly as written, in file order (safe to log)."""
    entries: Mapping[str, Mapping[str, Any]] = field(repr=False, compare=False)
    """Raw entries by key. Holds credentials: never log, never put in an exception."""
    content_hash: str = field(default="", compare=True)
    """sha256 of the canonical payload; lets copies be compared without holding data twice."""

    def subset_pairs(self, pairs: Sequence[tuple[str, str]]) -> DockerConfig:
        """A config with only the entries named by ``pairs`` (key here, key in the result)."""
        entries: dict[str, Mapping[str, Any]] = {}
        for old, new in pairs:
            if old in self.entries and new not in entries:  # first pair wins: kubelet order
                entries[new] = self.entries[old]
        return from_entries(self.format, entries)

    def payload(self) -> bytes:
        """Serialised bytes for the Secret's data key, in the secret's own format."""
        body: Mapping[str, Any] = (
            {"auths": dict(self.entries)} if self.format == "dockerconfigjson" else self.entries
        )
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def data_key(self) -> str:
        return DOCKERCONFIGJSON_KEY if self.format == "dockerconfigjson" else DOCKERCFG_KEY

    def secret_type(self) -> str:
        return DOCKERCONFIGJSON_TYPE if self.format == "dockerconfigjson" else DOCKERCFG_TYPE


def from_entries(fmt: Format, entries: Mapping[str, Mapping[str, Any]]) -> DockerConfig:
    """Build a ``DockerConfig`` (and its content hash) from already-validated entries."""
    config = DockerConfig(format=fmt, keys=tuple(entries), entries=dict(entries))
    digest = hashlib.sha256(config.payload()).hexdigest()
    return DockerConfig(format=fmt, keys=config.keys, entries=config.entries, content_hash=digest)


def parse_secret(secret: Mapping[str, Any]) -> DockerConfig:
    """Decode a Secret object (API dict; ``data`` base64, or ``stringData`` from a file).

    Raises ``InvalidPullSecret`` saying exactly why the kubelet would not use it.
    """
    secret_type = secret.get("type") or "Opaque"
    if not isinstance(secret_type, str) or secret_type not in _KEY_FOR_TYPE:
        raise InvalidPullSecret(
            PullSecretProblem.WRONG_TYPE,
            f"type is {secret_type!r}; the kubelet only uses {DOCKERCONFIGJSON_TYPE} "
            f"or {DOCKERCFG_TYPE}",
        )
    fmt, data_key = _KEY_FOR_TYPE[secret_type]
    raw = _data_value(secret, data_key)
    if not raw:
        present = sorted(_data_keys(secret))
        raise InvalidPullSecret(
            PullSecretProblem.MISSING_KEY,
            f"type {secret_type} needs a non-empty data key {data_key!r}; "
            f"keys present: {present or 'none'}",
        )
    return parse_docker_config(raw, fmt)


def _data_keys(secret: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for section in ("data", "stringData"):
        value = secret.get(section)
        if isinstance(value, Mapping):
            keys.update(str(k) for k in value)
    return keys


def _data_value(secret: Mapping[str, Any], key: str) -> bytes | None:
    string_data = secret.get("stringData")
    if isinstance(string_data, Mapping) and isinstance(string_data.get(key), str):
        return str(string_data[key]).encode()
    data = secret.get("data")
    if not isinstance(data, Mapping) or data.get(key) is None:
        return None
    value = data[key]
    if not isinstance(value, str):
        raise InvalidPullSecret(PullSecretProblem.BAD_ENCODING, f"data[{key!r}] is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPullSecret(
            PullSecretProblem.BAD_ENCODING, f"data[{key!r}] is not valid base64"
        ) from None


class _Object(list[tuple[str, Any]]):
    """A JSON object with every member in order, duplicates kept (Go decodes each one)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(payload: bytes | str) -> Any:
    """JSON as Go's encoding/json reads it: invalid UTF-8 becomes U+FFFD, a BOM or
    NaN/Infinity is an error, duplicate members are all seen, nesting is not our limit."""
    text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    if text.startswith("\ufeff"):
        raise ValueError("byte order mark")
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply for this decoder") from None


def parse_docker_config(payload: bytes | str, fmt: Format) -> DockerConfig:
    """Decode a ``.dockerconfigjson``/``.dockercfg`` payload as the kubelet's decoder would."""
    try:
        document = _decode(payload)
    except ValueError as exc:
        raise InvalidPullSecret(
            PullSecretProblem.BAD_JSON, f"the .{fmt} payload is not valid JSON ({exc})"[:200]
        ) from None
    entries: dict[str, Mapping[str, Any]] = {}
    if fmt == "dockercfg":
        _merge_auths(entries, document, ".dockercfg")
        return from_entries(fmt, entries)
    if document is None:
        return from_entries(fmt, entries)
    if not isinstance(document, _Object):
        raise InvalidPullSecret(
            PullSecretProblem.BAD_JSON, ".dockerconfigjson must be a JSON object"
        )
    for name, value in document:
        folded = name.casefold()
        if folded == "auths":
            if value is None:
                entries.clear()  # Go sets the map to nil on null
            else:
                _merge_auths(entries, value, '"auths"')
        elif folded == "httpheaders":
            _check_http_headers(value)
    return from_entries(fmt, entries)


def _merge_auths(entries: dict[str, Mapping[str, Any]], value: object, where: str) -> None:
    """Decode an auths map into ``entries`` (Go decodes into the existing map: members of a
    repeated ``auths`` merge, and every entry is decoded even if a later one replaces it)."""
    if value is None:
        return
    if not isinstance(value, _Object):
        raise InvalidPullSecret(PullSecretProblem.BAD_JSON, f"{where} must be a JSON object")
    for key, entry in value:
        entries[key] = _checked_entry(key, entry)


def _checked_entry(key: str, entry: object) -> Mapping[str, Any]:
    if entry is None:
        return {}
    if not isinstance(entry, _Object):
        raise InvalidPullSecret(PullSecretProblem.BAD_JSON, f"entry {key!r} must be a JSON object")
    fields: dict[str, Any] = {}
    for name, value in entry:
        folded = name.casefold()
        if folded in ("username", "password", "email", "auth"):
            if value is not None and not isinstance(value, str):
                raise InvalidPullSecret(
                    PullSecretProblem.BAD_JSON, f"entry {key!r}: field {folded!r} must be a string"
                )
            if value is not None:
                fields[folded] = value
    if fields.get("auth"):
        _check_auth_field(key, fields["auth"])
    plain: Mapping[str, Any] = _plain(entry)
    return plain


def _plain(value: Any) -> Any:
    """Back to ordinary dicts (last duplicate wins) for re-serialising copies."""
    if isinstance(value, _Object):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _check_http_headers(headers: object) -> None:
    if headers is None:
        return
    if not isinstance(headers, _Object) or not all(
        v is None or isinstance(v, str) for _, v in headers
    ):
        raise InvalidPullSecret(
            PullSecretProblem.BAD_JSON, '"HttpHeaders" must map header names to strings'
        )


def _check_auth_field(key: str, auth: str) -> None:
    """``decodeDockerConfigFieldAuth``: padded or raw base64 of ``user:password``."""
    auth = auth.replace("\r", "").replace("\n", "")  # Go's decoder skips line breaks
    try:
        if auth.strip().endswith("="):
            decoded = base64.b64decode(auth, validate=True)
        else:
            decoded = base64.b64decode(auth + "=" * (-len(auth) % 4), validate=True)
            if _has_padding_bits(auth):
                raise ValueError
    except (binascii.Error, ValueError):
        raise InvalidPullSecret(
            PullSecretProblem.BAD_AUTH, f"entry {key!r}: field 'auth' is not valid base64"
        ) from None
    if b":" not in decoded:
        raise InvalidPullSecret(
            PullSecretProblem.BAD_AUTH,
            f"entry {key!r}: field 'auth' must be base64 of 'username:password'",
        )


def _has_padding_bits(raw: str) -> bool:
    """Go's RawStdEncoding rejects a length of 1 mod 4 (a dangling sextet)."""
    return len(raw) % 4 == 1


def encode_secret_data(config: DockerConfig) -> dict[str, str]:
    """The Secret ``data`` map (base64 values) for ``config``."""
    return {config.data_key(): base64.b64encode(config.payload()).decode()}
