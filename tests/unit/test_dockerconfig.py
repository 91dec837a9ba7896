"""Pull-secret decoding must accept and refuse exactly what the kubelet does.

Sources of the expected values: pkg/credentialprovider/secrets ``MakeDockerKeyring`` (type and
data key pairing, empty data ignored, a JSON error fails every pull), config.go
(``DockerConfigJSON``, ``DockerConfigEntry.UnmarshalJSON``, ``decodeDockerConfigFieldAuth``)
and Go's encoding/json (case-insensitive field names, null is a no-op). Every credential here
is made up.
"""

from __future__ import annotations

import base64
import json
import traceback
from typing import Any

import pytest

from webhook.core.dockerconfig import (
    DockerConfig,
    InvalidPullSecret,
    PullSecretProblem,
    parse_docker_config,
    parse_secret,
)

USER = "fake-user"
PASSWORD = "fake-pass-123"
AUTH = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
AUTH_RAW = AUTH.rstrip("=")
SECRET_STRINGS = (USER, PASSWORD, AUTH, AUTH_RAW)

JSON_TYPE = "kubernetes.io/dockerconfigjson"
CFG_TYPE = "kubernetes.io/dockercfg"
JSON_KEY = ".dockerconfigjson"
CFG_KEY = ".dockercfg"

WRONG_TYPE = PullSecretProblem.WRONG_TYPE
MISSING_KEY = PullSecretProblem.MISSING_KEY
BAD_ENCODING = PullSecretProblem.BAD_ENCODING
BAD_JSON = PullSecretProblem.BAD_JSON
BAD_AUTH = PullSecretProblem.BAD_AUTH


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def b64_raw(text: str) -> str:
    """Unpadded base64, as some tools write ``auth``."""
    return b64(text).rstrip("=")


def auths(**entries: Any) -> str:
    return json.dumps({"auths": entries})


def secret(
    secret_type: str | None,
    data: dict[str, Any] | None = None,
    string_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    if secret_type is not None:
        obj["type"] = secret_type
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


JSON_PAYLOAD = json.dumps({"auths": {"quay.io": {"auth": AUTH}}})
CFG_PAYLOAD = json.dumps({"quay.io": {"auth": AUTH}})


# --------------------------------------------------------------------------------------------
# Secret type and data key (secrets.MakeDockerKeyring)
# --------------------------------------------------------------------------------------------

# fmt: off
ACCEPTED_SECRETS = [
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(JSON_PAYLOAD)}), "dockerconfigjson", ("quay.io",),
        id="dockerconfigjson type with .dockerconfigjson key",
    ),
    pytest.param(
        secret(CFG_TYPE, {CFG_KEY: b64(CFG_PAYLOAD)}), "dockercfg", ("quay.io",),
        id="dockercfg type with .dockercfg key and a bare map",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(JSON_PAYLOAD), CFG_KEY: "%%%"}),
        "dockerconfigjson", ("quay.io",),
        id="an unpaired extra data key is never read",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: JSON_PAYLOAD}), "dockerconfigjson", ("quay.io",),
        id="stringData payload is used as is",
    ),
    pytest.param(
        secret(CFG_TYPE, string_data={CFG_KEY: CFG_PAYLOAD}), "dockercfg", ("quay.io",),
        id="stringData dockercfg payload is used as is",
    ),
    pytest.param(
        secret(
            JSON_TYPE,
            {JSON_KEY: b64(auths(**{"old.example.com": {"auth": AUTH}}))},
            {JSON_KEY: auths(**{"new.example.com": {"auth": AUTH}})},
        ),
        "dockerconfigjson", ("new.example.com",),
        id="stringData wins over data as the API server merges it",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(CFG_PAYLOAD)}), "dockerconfigjson", (),
        id="bare map under the dockerconfigjson type has no auths so no keys",
    ),
    pytest.param(
        secret(CFG_TYPE, {CFG_KEY: b64(JSON_PAYLOAD)}), "dockercfg", ("auths",),
        id="auths document under the dockercfg type is one entry named auths",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64("{}")}), "dockerconfigjson", (),
        id="empty object is a valid config without keys",
    ),
]
# fmt: on


@pytest.mark.parametrize(("obj", "fmt", "keys"), ACCEPTED_SECRETS)
def test_secret_the_kubelet_uses(obj: dict[str, Any], fmt: str, keys: tuple[str, ...]) -> None:
    config = parse_secret(obj)

    assert config.format == fmt
    assert config.keys == keys


# fmt: off
REFUSED_SECRETS = [
    pytest.param(
        secret("Opaque", {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE,
        id="Opaque secret with a docker config key is ignored",
    ),
    pytest.param(secret(None, {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE, id="no type is Opaque"),
    pytest.param(secret("", {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE, id="empty type"),
    pytest.param(
        secret("kubernetes.io/basic-auth", {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE,
        id="another secret type",
    ),
    pytest.param(
        secret("Kubernetes.io/dockerconfigjson", {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE,
        id="type comparison is case-sensitive",
    ),
    pytest.param(
        secret(123, {JSON_KEY: b64(JSON_PAYLOAD)}), WRONG_TYPE,  # type: ignore[arg-type]
        id="non-string type",
    ),
    pytest.param(
        secret(JSON_TYPE, {CFG_KEY: b64(CFG_PAYLOAD)}), MISSING_KEY,
        id="dockerconfigjson type with only a .dockercfg key is ignored",
    ),
    pytest.param(
        secret(CFG_TYPE, {JSON_KEY: b64(JSON_PAYLOAD)}), MISSING_KEY,
        id="dockercfg type with only a .dockerconfigjson key is ignored",
    ),
    pytest.param(secret(JSON_TYPE), MISSING_KEY, id="no data at all"),
    pytest.param(secret(JSON_TYPE, {}), MISSING_KEY, id="empty data map"),
    pytest.param(secret(JSON_TYPE, {JSON_KEY: ""}), MISSING_KEY, id="empty data value"),
    pytest.param(secret(JSON_TYPE, {JSON_KEY: None}), MISSING_KEY, id="null data value"),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: ""}), MISSING_KEY, id="empty stringData value",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: "not base64!"}), BAD_ENCODING, id="data value not base64",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(JSON_PAYLOAD)[:-1]}), BAD_ENCODING,
        id="truncated base64 data value",
    ),
    pytest.param(secret(JSON_TYPE, {JSON_KEY: 5}), BAD_ENCODING, id="data value not a string"),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64("not json")}), BAD_JSON,
        id="payload that is not JSON fails every pull",
    ),
    pytest.param(
        secret(CFG_TYPE, {CFG_KEY: b64("{")}), BAD_JSON, id="truncated dockercfg payload",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(auths(**{"quay.io": {"auth": b64("no-colon")}}))}),
        BAD_AUTH,
        id="auth without a colon fails every pull",
    ),
]
# fmt: on


@pytest.mark.parametrize(("obj", "problem"), REFUSED_SECRETS)
def test_secret_the_kubelet_ignores_or_fails_on(
    obj: dict[str, Any], problem: PullSecretProblem
) -> None:
    with pytest.raises(InvalidPullSecret) as caught:
        parse_secret(obj)

    assert caught.value.problem is problem


def test_invalid_pull_secret_is_a_value_error() -> None:
    assert issubclass(InvalidPullSecret, ValueError)


# --------------------------------------------------------------------------------------------
# Payload decoding (DockerConfigJSON / DockerConfig / DockerConfigEntry.UnmarshalJSON)
# --------------------------------------------------------------------------------------------

# fmt: off
ACCEPTED_PAYLOADS = [
    pytest.param(JSON_PAYLOAD, "dockerconfigjson", ("quay.io",), id="padded auth"),
    pytest.param(
        auths(**{"quay.io": {"auth": AUTH_RAW}}), "dockerconfigjson", ("quay.io",),
        id="unpadded auth (RawStdEncoding) is accepted",
    ),
    pytest.param(
        auths(a={"auth": b64_raw("fake-user:fake-pass-12")}), "dockerconfigjson", ("a",),
        id="unpadded auth of length 2 mod 4",
    ),
    pytest.param(
        auths(a={"auth": b64_raw("fake-user:fake-pass-1")}), "dockerconfigjson", ("a",),
        id="unpadded auth of length 3 mod 4",
    ),
    pytest.param(
        auths(a={"auth": AUTH[:8] + "\n" + AUTH[8:]}), "dockerconfigjson", ("a",),
        id="line break inside auth is skipped by Go's decoder",
    ),
    pytest.param(
        auths(a={"auth": AUTH + "\n"}), "dockerconfigjson", ("a",),
        id="trailing line break after padding is skipped",
    ),
    pytest.param(
        auths(a={"auth": b64(":")}), "dockerconfigjson", ("a",),
        id="empty user and password is still user:password",
    ),
    pytest.param(
        auths(a={"auth": b64("fake-user:fake:pass")}), "dockerconfigjson", ("a",),
        id="password may contain a colon",
    ),
    pytest.param(
        auths(a={"auth": "YTpiYx=="}), "dockerconfigjson", ("a",),
        id="non-zero padding bits are accepted (Go's decoder is not strict)",
    ),
    pytest.param(
        auths(a={"auth": ""}), "dockerconfigjson", ("a",), id="empty auth is ignored",
    ),
    pytest.param(auths(a={"auth": None}), "dockerconfigjson", ("a",), id="null auth"),
    pytest.param(
        auths(a={"username": USER, "password": PASSWORD}), "dockerconfigjson", ("a",),
        id="username and password without auth",
    ),
    pytest.param(
        auths(a={"auth": AUTH, "username": "other-fake-user"}), "dockerconfigjson", ("a",),
        id="auth next to username overrides it",
    ),
    pytest.param(
        auths(a={"username": None, "email": None}), "dockerconfigjson", ("a",),
        id="null fields are left empty",
    ),
    pytest.param(
        auths(a={"identitytoken": 5, "x": [1]}), "dockerconfigjson", ("a",),
        id="unknown fields of any type are ignored",
    ),
    pytest.param(auths(a=None), "dockerconfigjson", ("a",), id="null entry is an empty entry"),
    pytest.param(auths(a={}), "dockerconfigjson", ("a",), id="empty entry"),
    pytest.param('{"auths": null}', "dockerconfigjson", (), id="null auths"),
    pytest.param('{"other": 1}', "dockerconfigjson", (), id="missing auths"),
    pytest.param(
        json.dumps({"Auths": {"quay.io": {"Auth": AUTH}}}), "dockerconfigjson", ("quay.io",),
        id="field names match case-insensitively like Go's encoding/json",
    ),
    pytest.param(
        json.dumps({"AUTHS": {"quay.io": {"AUTH": AUTH}}}), "dockerconfigjson", ("quay.io",),
        id="upper-case field names",
    ),
    pytest.param(
        json.dumps({"auths": {"a": {"auth": "bad!", "Auth": AUTH}}}), "dockerconfigjson", ("a",),
        id="the last case-insensitive duplicate field wins (valid last)",
    ),
    pytest.param(
        json.dumps({"auths": {"b": {}, "a": {}, "c": {}}}), "dockerconfigjson", ("b", "a", "c"),
        id="keys keep file order",
    ),
    pytest.param(
        json.dumps({"auths": {}, "HttpHeaders": {"X-Fake": "1"}}), "dockerconfigjson", (),
        id="HttpHeaders of strings",
    ),
    pytest.param(
        json.dumps({"auths": {}, "HttpHeaders": None}), "dockerconfigjson", (),
        id="null HttpHeaders",
    ),
    pytest.param(
        '  {"auths": {"a": {}}}\n', "dockerconfigjson", ("a",), id="surrounding whitespace",
    ),
    pytest.param(CFG_PAYLOAD, "dockercfg", ("quay.io",), id="dockercfg bare map"),
    pytest.param("{}", "dockercfg", (), id="empty dockercfg"),
    pytest.param('{"a": null}', "dockercfg", ("a",), id="dockercfg null entry"),
    pytest.param(
        json.dumps({"a": {"Auth": AUTH_RAW}}), "dockercfg", ("a",),
        id="dockercfg entry with case-insensitive unpadded auth",
    ),
]
# fmt: on


@pytest.mark.parametrize(("payload", "fmt", "keys"), ACCEPTED_PAYLOADS)
def test_payload_the_kubelet_decodes(payload: str, fmt: Any, keys: tuple[str, ...]) -> None:
    config = parse_docker_config(payload.encode(), fmt)

    assert config.format == fmt
    assert config.keys == keys
    assert parse_docker_config(payload, fmt) == config


# fmt: off
REFUSED_PAYLOADS = [
    pytest.param("not json", "dockerconfigjson", BAD_JSON, id="not JSON"),
    pytest.param("", "dockerconfigjson", BAD_JSON, id="empty payload"),
    pytest.param('{"auths": {}} x', "dockerconfigjson", BAD_JSON, id="trailing garbage"),
    pytest.param("[]", "dockerconfigjson", BAD_JSON, id="top level array"),
    pytest.param('"x"', "dockerconfigjson", BAD_JSON, id="top level string"),
    pytest.param("5", "dockerconfigjson", BAD_JSON, id="top level number"),
    pytest.param('{"auths": []}', "dockerconfigjson", BAD_JSON, id="auths is an array"),
    pytest.param('{"auths": "x"}', "dockerconfigjson", BAD_JSON, id="auths is a string"),
    pytest.param('{"Auths": 5}', "dockerconfigjson", BAD_JSON, id="Auths is a number"),
    pytest.param(auths(a="x"), "dockerconfigjson", BAD_JSON, id="entry is a string"),
    pytest.param(auths(a=[]), "dockerconfigjson", BAD_JSON, id="entry is an array"),
    pytest.param(auths(a=5), "dockerconfigjson", BAD_JSON, id="entry is a number"),
    pytest.param(
        auths(a={"username": 5}), "dockerconfigjson", BAD_JSON, id="username is a number",
    ),
    pytest.param(
        auths(a={"password": True}), "dockerconfigjson", BAD_JSON, id="password is a boolean",
    ),
    pytest.param(auths(a={"email": []}), "dockerconfigjson", BAD_JSON, id="email is an array"),
    pytest.param(auths(a={"auth": 5}), "dockerconfigjson", BAD_JSON, id="auth is a number"),
    pytest.param(
        auths(a={"UserName": {}}), "dockerconfigjson", BAD_JSON,
        id="field type is checked case-insensitively",
    ),
    pytest.param(
        json.dumps({"auths": {}, "HttpHeaders": []}), "dockerconfigjson", BAD_JSON,
        id="HttpHeaders is not an object",
    ),
    pytest.param(
        json.dumps({"auths": {}, "httpheaders": {"X-Fake": 1}}), "dockerconfigjson", BAD_JSON,
        id="HttpHeaders value is not a string",
    ),
    pytest.param(
        auths(a={"auth": "not base64!"}), "dockerconfigjson", BAD_AUTH, id="auth not base64",
    ),
    pytest.param(
        auths(a={"auth": b64("fake-user")}), "dockerconfigjson", BAD_AUTH,
        id="auth without a colon",
    ),
    pytest.param(
        auths(a={"auth": b64_raw("fake-user")}), "dockerconfigjson", BAD_AUTH,
        id="unpadded auth without a colon",
    ),
    pytest.param(auths(a={"auth": "Y"}), "dockerconfigjson", BAD_AUTH, id="auth of one character"),
    pytest.param(
        auths(a={"auth": "YTpiYw="}), "dockerconfigjson", BAD_AUTH, id="auth with short padding",
    ),
    pytest.param(
        auths(a={"auth": "YTpiYw==YTpi"}), "dockerconfigjson", BAD_AUTH,
        id="auth with data after padding",
    ),
    pytest.param(
        auths(a={"auth": "YTpiYw-_"}), "dockerconfigjson", BAD_AUTH,
        id="URL-safe alphabet is not standard base64",
    ),
    pytest.param(
        auths(a={"auth": " " + AUTH}), "dockerconfigjson", BAD_AUTH,
        id="leading space in auth",
    ),
    pytest.param(
        auths(a={"auth": AUTH + " "}), "dockerconfigjson", BAD_AUTH,
        id="trailing space after padding",
    ),
    pytest.param(
        json.dumps({"auths": {"a": {"Auth": AUTH, "auth": "bad!"}}}), "dockerconfigjson",
        BAD_AUTH,
        id="the last case-insensitive duplicate field wins (invalid last)",
    ),
    pytest.param(
        auths(good={"auth": AUTH}, bad={"auth": b64("no-colon")}), "dockerconfigjson", BAD_AUTH,
        id="one bad entry fails the whole secret",
    ),
    pytest.param("[]", "dockercfg", BAD_JSON, id="dockercfg array"),
    pytest.param('{"a": "x"}', "dockercfg", BAD_JSON, id="dockercfg entry is a string"),
    pytest.param(
        json.dumps({"a": {"auth": b64("fake-user")}}), "dockercfg", BAD_AUTH,
        id="dockercfg entry auth without a colon",
    ),
]
# fmt: on


@pytest.mark.parametrize(("payload", "fmt", "problem"), REFUSED_PAYLOADS)
def test_payload_the_kubelet_refuses(payload: str, fmt: Any, problem: PullSecretProblem) -> None:
    with pytest.raises(InvalidPullSecret) as caught:
        parse_docker_config(payload.encode(), fmt)

    assert caught.value.problem is problem


def test_non_utf8_bytes_outside_strings_are_bad_json() -> None:
    with pytest.raises(InvalidPullSecret) as caught:
        parse_docker_config(b'{"auths": {}}\xff', "dockerconfigjson")

    assert caught.value.problem is BAD_JSON


def test_entries_hold_the_decoded_entry_and_keys_are_safe_to_log() -> None:
    config = parse_secret(secret(JSON_TYPE, {JSON_KEY: b64(JSON_PAYLOAD)}))

    assert config.keys == ("quay.io",)
    assert dict(config.entries) == {"quay.io": {"auth": AUTH}}


def test_content_hash_follows_content_not_key_order() -> None:
    one = parse_docker_config(auths(a={"auth": AUTH}, b={}), "dockerconfigjson")
    reordered = parse_docker_config(auths(b={}, a={"auth": AUTH}), "dockerconfigjson")
    other_password = parse_docker_config(
        auths(a={"auth": b64("fake-user:fake-pass-456")}, b={}), "dockerconfigjson"
    )

    assert len(one.content_hash) == 64
    assert int(one.content_hash, 16) >= 0
    assert one.content_hash == reordered.content_hash
    assert one.content_hash != other_password.content_hash
    assert one != other_password  # entries are not compared, the hash is


# --------------------------------------------------------------------------------------------
# Go encoding/json behaviour the decoder does not reproduce (all verified against the real
# DockerConfigJSON / DockerConfig unmarshalling of kubelet v1.36.3 built with Go 1.26)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param("dockerconfigjson", id="null dockerconfigjson payload is an empty config"),
        pytest.param("dockercfg", id="null dockercfg payload is an empty config"),
    ],
)
def test_null_payload_is_an_empty_config(fmt: Any) -> None:
    assert parse_docker_config(b"null", fmt).keys == ()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"auths": {}, "x": NaN}', id="NaN is not JSON for Go"),
        pytest.param(
            b'{"auths": {"a": {"username": "u", "x": -Infinity}}}', id="Infinity is not JSON",
        ),
        pytest.param(b'\xef\xbb\xbf{"auths": {}}', id="UTF-8 BOM is not JSON for Go"),
    ],
)  # fmt: skip
def test_non_standard_json_is_bad_json(payload: bytes) -> None:
    with pytest.raises(InvalidPullSecret) as caught:
        parse_docker_config(payload, "dockerconfigjson")

    assert caught.value.problem is BAD_JSON


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param('{"auths": {"a": {}}, "auths": {"b": {}}}', id="repeated auths members merge"),
        pytest.param('{"auths": {"a": {}}, "Auths": {"b": {}}}', id="auths and Auths merge"),
    ],
)  # fmt: skip
def test_repeated_auths_members_merge_like_go(payload: str) -> None:
    assert set(parse_docker_config(payload, "dockerconfigjson").keys) == {"a", "b"}


def test_bad_auth_in_an_overridden_duplicate_entry_still_fails() -> None:
    payload = '{"auths": {"a": {"auth": "bad!"}, "a": {}}}'

    with pytest.raises(InvalidPullSecret) as caught:
        parse_docker_config(payload, "dockerconfigjson")

    assert caught.value.problem is BAD_AUTH


def test_invalid_utf8_inside_a_string_is_accepted() -> None:
    config = parse_docker_config(b'{"auths": {"a": {"email": "\xff"}}}', "dockerconfigjson")

    assert config.keys == ("a",)


def test_deeply_nested_json_is_a_clear_error_not_a_crash() -> None:
    # Go accepts nesting up to 10,000; Python's decoder stops near 1,000. A documented
    # divergence: such a secret is reported (and not injected) instead of crashing a worker.
    depth = 5000
    payload = b'{"auths": {}, "x": ' + b"[" * depth + b"]" * depth + b"}"

    with pytest.raises(InvalidPullSecret, match="nested too deeply") as caught:
        parse_docker_config(payload, "dockerconfigjson")
    assert caught.value.problem is PullSecretProblem.BAD_JSON


def test_unicode_case_folding_of_field_names() -> None:
    payload = json.dumps({"auth\u017f": {"quay.io": {"auth": AUTH}}})

    assert parse_docker_config(payload, "dockerconfigjson").keys == ("quay.io",)


def test_null_http_header_value_is_accepted() -> None:
    payload = json.dumps({"auths": {}, "HttpHeaders": {"X-Fake": None}})

    assert parse_docker_config(payload, "dockerconfigjson").keys == ()


# --------------------------------------------------------------------------------------------
# Nothing leaks credentials
# --------------------------------------------------------------------------------------------

# fmt: off
LEAKY_INPUTS = [
    pytest.param(
        secret("Opaque", {JSON_KEY: b64(JSON_PAYLOAD)}), id="wrong type with credentials",
    ),
    pytest.param(
        secret(JSON_TYPE, {CFG_KEY: b64(CFG_PAYLOAD)}), id="missing key next to credentials",
    ),
    pytest.param(
        secret(JSON_TYPE, {JSON_KEY: b64(JSON_PAYLOAD)[:-2] + "!"}), id="bad base64 data",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: JSON_PAYLOAD[:-1]}), id="truncated JSON",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: auths(a={"auth": PASSWORD})}),
        id="password in auth that is not base64",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: auths(a={"auth": b64(PASSWORD)})}),
        id="base64 password without a colon",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: auths(a={"auth": AUTH + "="})}),
        id="credentials with broken padding",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: auths(a={"username": USER, "password": 1})}),
        id="username next to a non-string password",
    ),
    pytest.param(
        secret(JSON_TYPE, string_data={JSON_KEY: auths(a=PASSWORD)}), id="entry is the password",
    ),
    pytest.param(
        secret(
            JSON_TYPE,
            string_data={JSON_KEY: json.dumps({"auths": {}, "HttpHeaders": {PASSWORD: 1}})},
        ),
        id="password as an HTTP header name",
    ),
]
# fmt: on


def _assert_no_secret_in(text: str) -> None:
    for value in SECRET_STRINGS:
        assert value not in text


@pytest.mark.parametrize("obj", LEAKY_INPUTS)
def test_errors_never_contain_credentials(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidPullSecret) as caught:
        parse_secret(obj)

    error = caught.value
    _assert_no_secret_in(str(error))
    _assert_no_secret_in(repr(error))
    _assert_no_secret_in(repr(error.args))
    _assert_no_secret_in("".join(traceback.format_exception(error)))


def test_docker_config_repr_never_contains_credentials() -> None:
    config = parse_docker_config(
        auths(**{"quay.io": {"auth": AUTH, "username": USER, "password": PASSWORD}}),
        "dockerconfigjson",
    )

    assert config.keys == ("quay.io",)
    for text in (repr(config), str(config), f"{config}", f"{config!r}"):
        _assert_no_secret_in(text)
        assert "quay.io" in text


def test_docker_config_is_a_frozen_value() -> None:
    config = parse_docker_config(JSON_PAYLOAD, "dockerconfigjson")

    assert isinstance(config, DockerConfig)
    with pytest.raises(AttributeError):
        config.keys = ()  # type: ignore[misc]
