"""Settings.from_env: a Deployment's ``env`` is the whole configuration, so every mistake in
it must stop the process with a message naming the variable."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from webhook.settings import Settings, SettingsError


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert (settings.port, settings.health_port, settings.bind_address) == (8443, 8080, "0.0.0.0")  # noqa: S104
    assert settings.cluster is True
    assert settings.write_copies is True
    assert settings.ensure_timeout_seconds == 1.5
    assert settings.max_body_bytes == 3 * 1024 * 1024
    assert settings.policy_key == "policy.yaml"
    assert settings.kubeconfig == ""
    assert settings.cert_mode == "provided"
    assert settings.tls_files is None


def test_variables_outside_the_prefix_are_ignored() -> None:
    env = {"HOME": "/root", "PATH": "/usr/bin", "PSI": "x", "MY_PSI_PORT": "1", "psi_port": "1"}

    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        pytest.param({"PSI_CLUSTER": "true"}, "cluster", True, id="bool true"),
        pytest.param({"PSI_CLUSTER": "TRUE"}, "cluster", True, id="bool is case-insensitive"),
        pytest.param({"PSI_CLUSTER": " yes "}, "cluster", True, id="bool yes, padded"),
        pytest.param({"PSI_CLUSTER": "1"}, "cluster", True, id="bool 1"),
        pytest.param({"PSI_CLUSTER": "on"}, "cluster", True, id="bool on"),
        pytest.param({"PSI_CLUSTER": "false"}, "cluster", False, id="bool false"),
        pytest.param({"PSI_WRITE_COPIES": "0"}, "write_copies", False, id="bool 0"),
        pytest.param({"PSI_WRITE_COPIES": "no"}, "write_copies", False, id="bool no"),
        pytest.param({"PSI_WRITE_COPIES": "Off"}, "write_copies", False, id="bool off"),
        pytest.param({"PSI_WRITE_COPIES": ""}, "write_copies", False, id="bool set but empty"),
        pytest.param({"PSI_PORT": "9443"}, "port", 9443, id="int"),
        pytest.param({"PSI_WORKERS": " 4 "}, "workers", 4, id="int with surrounding spaces"),
        pytest.param({"PSI_MAX_BODY_BYTES": "1_048_576"}, "max_body_bytes", 1048576, id="int _"),
        pytest.param(
            {"PSI_ENSURE_TIMEOUT_SECONDS": "2.5"}, "ensure_timeout_seconds", 2.5, id="float"
        ),
        pytest.param(
            {"PSI_ENSURE_TIMEOUT_SECONDS": "2"}, "ensure_timeout_seconds", 2.0, id="float from int"
        ),
        pytest.param(
            {"PSI_POLICY_CONFIGMAP": "psi-policy"}, "policy_configmap", "psi-policy", id="string"
        ),
        pytest.param(
            {"PSI_LOG_LEVEL": " debug "}, "log_level", " debug ", id="strings are kept verbatim"
        ),
    ],
)
def test_values_are_parsed_by_the_fields_type(
    env: dict[str, str], field: str, expected: Any
) -> None:
    value = getattr(Settings.from_env(env), field)

    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        pytest.param("PSI_PORT", "8443.0", "int", id="an int written as a float"),
        pytest.param("PSI_PORT", "https", "int", id="an int that is a word"),
        pytest.param("PSI_WORKERS", "", "int", id="an empty int"),
        pytest.param("PSI_CLUSTER", "maybe", "bool", id="a bool that is neither"),
        pytest.param("PSI_CLUSTER", "2", "bool", id="a bool that is another number"),
        pytest.param("PSI_ENSURE_TIMEOUT_SECONDS", "1.5s", "float", id="a float with a unit"),
    ],
)
def test_a_value_that_does_not_parse_names_the_variable(name: str, raw: str, kind: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: raw})

    assert name in str(caught.value)
    assert repr(raw) in str(caught.value)
    assert kind in str(caught.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"PSI_FOO": "1"}, ["PSI_FOO"], id="an unknown variable"),
        pytest.param({"PSI_POLICY_CONFIG_MAP": "x"}, ["PSI_POLICY_CONFIG_MAP"], id="a misspelling"),
        pytest.param({"PSI_port": "1"}, ["PSI_port"], id="the right name in the wrong case"),
        pytest.param(
            {"PSI_ZED": "1", "PSI_PORT": "1", "PSI_ALPHA": "1"},
            ["PSI_ALPHA", "PSI_ZED"],
            id="every unknown variable is named, known ones are not",
        ),
    ],
)
def test_an_unknown_setting_is_an_error_naming_it(env: dict[str, str], named: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)

    message = str(caught.value)
    assert all(name in message for name in named)
    assert "PSI_PORT" not in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({"KUBECONFIG": "/etc/kube/config"}, "/etc/kube/config", id="KUBECONFIG"),
        pytest.param(
            {"KUBECONFIG": os.pathsep.join(["/first", "/second"])},
            "/first",
            id="the first entry of a KUBECONFIG list",
        ),
        pytest.param(
            {"KUBECONFIG": "/from-kubectl", "PSI_KUBECONFIG": "/explicit"},
            "/explicit",
            id="PSI_KUBECONFIG wins over KUBECONFIG",
        ),
        pytest.param({"KUBECONFIG": ""}, "", id="an empty KUBECONFIG means in-cluster"),
        pytest.param({}, "", id="neither means in-cluster"),
    ],
)
def test_kubeconfig_falls_back_to_kubectls_variable(env: dict[str, str], expected: str) -> None:
    assert Settings.from_env(env).kubeconfig == expected


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("PSI_") or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PSI_PORT", "10443")
    monkeypatch.setenv("PSI_POLICY_NAMESPACE", "psi-system")

    settings = Settings.from_env()

    assert (settings.port, settings.policy_namespace) == (10443, "psi-system")


def test_every_field_can_be_set_from_its_variable() -> None:
    """No field is unreachable: each ``PSI_<FIELD>`` is accepted and lands in its field."""
    samples = {"bool": ("false", False), "int": ("7", 7), "float": ("0.25", 0.25)}
    env: dict[str, str] = {}
    expected: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        raw, value = samples.get(str(field.type), (f"value-of-{field.name}", None))
        env[f"PSI_{field.name.upper()}"] = raw
        expected[field.name] = raw if value is None else value

    assert dataclasses.asdict(Settings.from_env(env)) == expected


@pytest.mark.parametrize(
    ("cert", "key", "expected"),
    [
        pytest.param(
            "/tls/tls.crt",
            "/tls/tls.key",
            (Path("/tls/tls.crt"), Path("/tls/tls.key")),
            id="both files set: TLS from those paths",
        ),
        pytest.param("/tls/tls.crt", "", None, id="a certificate without a key serves no TLS"),
        pytest.param("", "/tls/tls.key", None, id="a key without a certificate serves no TLS"),
    ],
)
def test_tls_files(cert: str, key: str, expected: tuple[Path, Path] | None) -> None:
    env = {"PSI_TLS_CERT_FILE": cert, "PSI_TLS_KEY_FILE": key}

    assert Settings.from_env(env).tls_files == expected
