"""Pull-secret manifests for ``pullsecret-injector secret create`` (pure: no I/O).

Two sources:

* a Docker config file, read by the caller and parsed here: a ``config.json`` (Docker,
  Podman's ``auth.json``) or a legacy ``.dockercfg``. The file is told apart by content: a
  JSON object with any of Docker's ``config.json`` top-level fields (``auths``,
  ``credsStore``, ``credHelpers``, ``HttpHeaders``, ...; any case, as Go reads them) is a
  ``config.json``, any other object is a ``.dockercfg`` (a bare map of registry entries).
  ``--registry`` patterns keep only part of it, with the semantics of a policy's
  ``credentialSubset`` (``webhook.core.copies.grant_subset``): an entry whose key lies inside a
  pattern is kept under its own key; an entry *broader* than a pattern (key ``quay.io``,
  pattern ``quay.io/team``) is re-keyed to the pattern, so the kubelet uses those
  credentials only for what was asked; everything else is dropped;
* one registry's ``server``/``username``/``password`` (``email`` optional), written as
  ``kubectl create secret docker-registry`` writes them (``auth`` plus the plain fields).

Registries whose credentials are not in the file (``credHelpers``, or entries left empty
because a ``credsStore`` keeps them) cannot be exported: they are skipped with a warning.
Entries holding only an ``identitytoken`` are kept, with a warning that the kubelet ignores
that field. Every manifest is checked by the webhook's own decoder (``parse_secret``) before
it is returned, so the command never produces a Secret the kubelet would ignore or choke on.

Messages (errors and warnings) name registries and fields, never credential values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from webhook.core.copies import grant_subset
from webhook.core.dockerconfig import (
    DockerConfig,
    Format,
    InvalidPullSecret,
    encode_secret_data,
    from_entries,
    parse_docker_config,
    parse_secret,
)
from webhook.core.names import is_dns_label, is_dns_subdomain
from webhook.core.registry import InvalidPattern, check_pattern, normalize_key

__all__ = [
    "MAX_SECRET_BYTES",
    "Built",
    "DockerConfigFile",
    "SecretCreateError",
    "from_credentials",
    "from_docker_config",
    "parse_docker_config_file",
    "registry_pattern",
]

MAX_SECRET_BYTES = 1024 * 1024
"""The API server refuses a Secret whose data exceeds 1 MiB."""

FileKind = Literal["config.json", ".dockercfg"]

# Docker CLI ConfigFile JSON fields (cli/config/configfile/file.go), case-folded: any one of
# them at the top level makes the document a config.json rather than a bare .dockercfg map.
_CONFIG_JSON_FIELDS = frozenset(
    name.casefold()
    for name in (
        "auths", "HttpHeaders", "psFormat", "imagesFormat", "networksFormat", "pluginsFormat",
        "volumesFormat", "statsFormat", "detachKeys", "credsStore", "credHelpers",
        "serviceInspectFormat", "servicesFormat", "tasksFormat", "secretFormat",
        "configFormat", "nodesFormat", "pruneFilters", "proxies", "experimental",
        "stackOrchestrator", "kubernetes", "currentContext", "cliPluginsExtraDirs", "plugins",
        "aliases", "features",
    )
)  # fmt: skip

_CREDENTIAL_FIELDS = ("auth", "username", "password")
_TOKEN_FIELDS = ("identitytoken", "registrytoken")


class SecretCreateError(ValueError):
    """Input that cannot make a usable pull secret. Never quotes a credential.

    ``warnings`` are the notes gathered before the failure (they often explain it).
    """

    def __init__(self, message: str, warnings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.warnings = tuple(warnings)


@dataclass(frozen=True, slots=True)
class Built:
    """A Secret manifest ready to print or apply, and what the user should know about it."""

    manifest: dict[str, Any]
    """``apiVersion``/``kind``/``metadata``/``type``/``data`` (base64, as the API stores it)."""
    keys: tuple[str, ...]
    """The ``auths`` keys of the Secret, sorted as serialised (safe to print)."""
    warnings: tuple[str, ...]
    """One line each; registries and fields only."""

    def secret_strings(self) -> tuple[str, ...]:
        """Every string of the manifest that carries credentials (to redact from API errors)."""
        config = parse_secret(self.manifest)
        values: list[str] = [str(v) for v in self.manifest["data"].values()]
        values.append(config.payload().decode())
        for entry in config.entries.values():
            values.extend(
                value
                for name, value in entry.items()
                if isinstance(value, str) and value and name.casefold() != "email"
            )
        return tuple(values)


@dataclass(frozen=True, slots=True)
class DockerConfigFile:
    """A parsed Docker config file: entries checked by the kubelet's decoder, plus the
    credential-store settings that say where the rest of the credentials live."""

    kind: FileKind
    config: DockerConfig
    creds_store: str
    """``credsStore`` (``""`` when absent): the helper holding every non-inline credential."""
    cred_helpers: Mapping[str, str]
    """``credHelpers``: registry host -> helper name (``docker-credential-<name>``)."""


def parse_docker_config_file(content: bytes | str, label: str) -> DockerConfigFile:
    """Parse a ``config.json`` or ``.dockercfg``; ``label`` names it in messages."""
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = f" ({exc})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SecretCreateError(f"{label}: not valid JSON{detail}") from None
    if not isinstance(document, dict):
        raise SecretCreateError(f"{label}: must be a JSON object (a Docker config file)")
    is_config_json = any(str(name).casefold() in _CONFIG_JSON_FIELDS for name in document)
    kind: FileKind = "config.json" if is_config_json else ".dockercfg"
    fmt: Format = "dockerconfigjson" if is_config_json else "dockercfg"
    try:
        config = parse_docker_config(text, fmt)
    except InvalidPullSecret as exc:
        raise SecretCreateError(f"{label} ({kind}): {exc}") from None
    if not is_config_json:
        return DockerConfigFile(kind, config, "", {})
    creds_store = _go_field(document, "credsStore")
    if creds_store is not None and not isinstance(creds_store, str):
        raise SecretCreateError(f"{label}: credsStore must be a string")
    helpers = _go_field(document, "credHelpers")
    if helpers is not None and (
        not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values())
    ):
        raise SecretCreateError(f"{label}: credHelpers must map registries to helper names")
    return DockerConfigFile(kind, config, creds_store or "", dict(helpers or {}))


def _go_field(document: Mapping[str, Any], name: str) -> Any:
    """A struct field as Go's encoding/json fills it: names match case-insensitively, the
    last matching member wins."""
    value = None
    for key, member in document.items():
        if key.casefold() == name.casefold():
            value = member
    return value


def registry_pattern(value: str, what: str = "--registry") -> str:
    """``check_pattern`` with the command-line flag named in the error."""
    try:
        return check_pattern(value)
    except InvalidPattern as exc:
        raise SecretCreateError(f"{what} {exc}") from None


def from_docker_config(
    source: DockerConfigFile,
    registries: Sequence[str],
    *,
    name: str,
    namespace: str | None,
    secret_format: Format,
    label: str,
) -> Built:
    """The Secret for ``source``, restricted to ``registries`` when any are given."""
    patterns = [registry_pattern(value) for value in registries]
    config = source.config
    warnings: list[str] = []
    exportable: list[str] = []
    for key in config.keys:
        problem = _unexportable(source, key)
        if problem is None:
            exportable.append(key)
        elif not patterns or grant_subset([key], patterns):
            warnings.append(problem)
    warnings.extend(_helper_only_registries(source, patterns))

    if not patterns:
        pairs = tuple((key, key) for key in exportable)
        if not pairs:
            raise SecretCreateError(
                f"{label}: no registry credentials in the file that can be exported", warnings
            )
    else:
        for value, pattern in zip(registries, patterns, strict=True):
            if not grant_subset(exportable, [pattern]):
                available = ", ".join(exportable) or "none"
                raise SecretCreateError(
                    f"--registry {value}: no registry with credentials in {label} matches it "
                    f"(registries it can export: {available})",
                    warnings,
                )
        pairs = grant_subset(exportable, patterns)

    subset = config.subset_pairs(pairs)
    carried: set[str] = set()
    for old, new in pairs:
        if new in carried:
            continue  # subset_pairs: the first pair (the kubelet's first choice) wins
        carried.add(new)
        if old != new:
            warnings.append(
                f"{old}: written under the narrower key {new} (as --registry asked), so the "
                f"kubelet uses these credentials only for {new}"
            )
    for key in subset.keys:
        if not _has_credentials(subset.entries[key]):
            warnings.append(
                f"{key}: only an identity token; the kubelet ignores identitytoken, so it "
                "will not use this entry (kept as in the file)"
            )
    return _build(subset.entries, name, namespace, secret_format, warnings)


def _unexportable(source: DockerConfigFile, key: str) -> str | None:
    """Why the entry ``key`` cannot be exported, or None when it can."""
    helper = _helper_for(source.cred_helpers, key)
    if helper is not None:
        return (
            f"{key}: credentials are kept by the credential helper docker-credential-{helper} "
            "(credHelpers), not in the file; cannot be exported, skipped"
        )
    entry = source.config.entries[key]
    if normalize_key(key) is None:
        return f"{key}: not a registry address the kubelet can use (it skips the key); skipped"
    if _has_credentials(entry) or _has_token(entry):
        return None
    if source.creds_store:
        return (
            f"{key}: credentials are kept by the credential store "
            f"docker-credential-{source.creds_store} (credsStore), not in the file; "
            "cannot be exported, skipped"
        )
    return f"{key}: no credentials in the file; skipped"


def _helper_only_registries(source: DockerConfigFile, patterns: Sequence[str]) -> list[str]:
    """credHelpers registries with no entry in ``auths`` at all (warned about likewise)."""
    warnings = []
    hosts = {_hostname(key) for key in source.config.keys}
    for registry, helper in source.cred_helpers.items():
        if _hostname(registry) in hosts or normalize_key(registry) is None:
            continue
        if not patterns or grant_subset([registry], patterns):
            warnings.append(
                f"{registry}: credentials are kept by the credential helper "
                f"docker-credential-{helper} (credHelpers), not in the file; "
                "cannot be exported, skipped"
            )
    return warnings


def _helper_for(helpers: Mapping[str, str], key: str) -> str | None:
    """Docker picks a credHelpers entry by registry host name (``ConvertToHostname``)."""
    host = _hostname(key)
    for registry, helper in helpers.items():
        if registry == key or _hostname(registry) == host:
            return helper
    return None


def _hostname(key: str) -> str:
    stripped = key.split("://", 1)[1] if "://" in key else key
    return stripped.split("/", 1)[0]


def _field(entry: Mapping[str, Any], name: str) -> Any:
    return _go_field(entry, name)


def _has_credentials(entry: Mapping[str, Any]) -> bool:
    """Would the kubelet get a user name or password from this entry?"""
    return any(_field(entry, name) for name in _CREDENTIAL_FIELDS)


def _has_token(entry: Mapping[str, Any]) -> bool:
    return any(_field(entry, name) for name in _TOKEN_FIELDS)


def from_credentials(
    server: str,
    username: str,
    password: str,
    email: str | None,
    *,
    name: str,
    namespace: str | None,
    secret_format: Format,
) -> Built:
    """The Secret for one registry's credentials."""
    key = server.strip()
    registry_pattern(key, "--server")
    if not username:
        raise SecretCreateError("--username is empty")
    if ":" in username:
        raise SecretCreateError(
            "--username must not contain ':' (the kubelet splits 'auth' at the first ':')"
        )
    if not password:
        raise SecretCreateError("missing password: the password is empty")
    entry: dict[str, Any] = {"username": username, "password": password}
    if email:
        entry["email"] = email
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    return _build({key: entry}, name, namespace, secret_format, [])


def _build(
    entries: Mapping[str, Mapping[str, Any]],
    name: str,
    namespace: str | None,
    secret_format: Format,
    warnings: list[str],
) -> Built:
    _check_name(name, namespace)
    config = from_entries(secret_format, entries)
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": config.secret_type(),
        "data": encode_secret_data(config),
    }
    try:
        decoded = parse_secret(manifest)  # the webhook's own acceptance rules
    except InvalidPullSecret as exc:
        raise SecretCreateError(f"the Secret would not be usable: {exc}", warnings) from None
    if sorted(decoded.keys) != sorted(config.keys):
        raise SecretCreateError("the Secret does not decode to the entries it was built from")
    size = sum(len(value) for value in manifest["data"].values()) * 3 // 4
    if size > MAX_SECRET_BYTES:
        raise SecretCreateError(
            f"the Secret's data would be {size} bytes; the API server accepts at most "
            f"{MAX_SECRET_BYTES} (use --registry to keep fewer registries)",
            warnings,
        )
    return Built(manifest=manifest, keys=decoded.keys, warnings=tuple(warnings))


def _check_name(name: str, namespace: str | None) -> None:
    if not is_dns_subdomain(name):
        raise SecretCreateError(
            f"--name {name!r} is not a valid Secret name (lower-case DNS subdomain: "
            "a-z, 0-9, '-' and '.', at most 253 characters)"
        )
    if namespace and not is_dns_label(namespace):
        raise SecretCreateError(
            f"--namespace {namespace!r} is not a valid namespace name (lower-case DNS label: "
            "a-z, 0-9 and '-', at most 63 characters)"
        )
