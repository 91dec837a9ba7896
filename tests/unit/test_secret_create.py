"""``pullsecret-injector secret create``: the builder (``core.secretcreate``) and the command.

The builder cases call the pure functions; the command cases run the installed console script
in a subprocess with files in a temporary directory, as a user would, and check exit codes,
stdout and stderr. Every manifest produced is decoded again by the webhook's own
``parse_secret``. Every credential here is made up, and no message may contain one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.core.dockerconfig import parse_secret
from webhook.core.secretcreate import (
    Built,
    SecretCreateError,
    from_credentials,
    from_docker_config,
    parse_docker_config_file,
)

JSON_TYPE = "kubernetes.io/dockerconfigjson"
CFG_TYPE = "kubernetes.io/dockercfg"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def password(user: str) -> str:
    return f"fake-pass-{user}"


def cred(user: str, **extra: str) -> dict[str, str]:
    """An entry as ``docker login`` writes it: ``auth`` = base64 of user:password."""
    return {"auth": b64(f"{user}:{password(user)}"), **extra}


USERS = ("quay-user", "team-user", "rh-user", "hub-user", "glob-user", "ecr-user", "plain-user")
TOKEN = "fake-identity-token-0001"
SECRET_STRINGS = (
    *(password(user) for user in USERS),
    *(cred(user)["auth"] for user in USERS),
    TOKEN,
    "fake-typed-secret",
)


def assert_no_credentials(*texts: str) -> None:
    for text in texts:
        for value in SECRET_STRINGS:
            assert value not in text, "a credential leaked into a message"


def users_by_key(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Decode a manifest with the webhook's decoder: auths key -> user name ("token" for an
    identity-token-only entry). Also checks each user's password."""
    config = parse_secret(manifest)
    out: dict[str, str] = {}
    for key in config.keys:
        entry = {name.casefold(): value for name, value in config.entries[key].items()}
        if "auth" not in entry:
            out[key] = "token" if entry.get("identitytoken") else "?"
            continue
        user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        assert secret == password(user)
        out[key] = user
    return out


def build(
    document: Mapping[str, Any] | str,
    registries: Sequence[str] = (),
    kind: str = "dockerconfigjson",
) -> Built:
    text = document if isinstance(document, str) else json.dumps(document)
    source = parse_docker_config_file(text, "config.json")
    return from_docker_config(
        source,
        registries,
        name="corp-pull",
        namespace="team-a",
        secret_format=kind,  # type: ignore[arg-type]
        label="config.json",
    )


QUAY_AND_REDHAT = {"auths": {"quay.io": cred("quay-user"), "registry.redhat.io": cred("rh-user")}}

# -- builder: from a Docker config file ------------------------------------------------------

FILE_CASES = [
    pytest.param(
        QUAY_AND_REDHAT,
        [],
        {"quay.io": "quay-user", "registry.redhat.io": "rh-user"},
        [],
        id="without --registry every entry with credentials is kept under its own key",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay.io/team"],
        {"quay.io/team": "quay-user"},
        ["quay.io: written under the narrower key quay.io/team"],
        id="a registry narrower than the file's key re-keys that entry to the registry "
        "and drops the others",
    ),
    pytest.param(
        {
            "auths": {
                "quay.io/a": cred("quay-user"),
                "quay.io/b": cred("team-user"),
                "registry.redhat.io": cred("rh-user"),
            }
        },
        ["quay.io"],
        {"quay.io/a": "quay-user", "quay.io/b": "team-user"},
        [],
        id="a registry broader than the file's keys keeps each of them under its own key",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user"), "quay.io/team": cred("team-user")}},
        ["quay.io/team"],
        {"quay.io/team": "team-user"},
        [],
        id="an entry with exactly the registry's key wins over a broader one",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user"), "quay.io/team": cred("team-user")}},
        ["quay.io/team/app"],
        {"quay.io/team/app": "team-user"},
        ["quay.io/team: written under the narrower key quay.io/team/app"],
        id="of several broader keys the kubelet's first choice (the most specific) is carried",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user"), "registry.redhat.io": cred("rh-user")}},
        ["quay.io/team", "registry.redhat.io"],
        {"quay.io/team": "quay-user", "registry.redhat.io": "rh-user"},
        ["quay.io: written under the narrower key quay.io/team"],
        id="repeated --registry options keep the union",
    ),
    pytest.param(
        {"auths": {"*.example.com": cred("glob-user"), "quay.io": cred("quay-user")}},
        ["a.example.com"],
        {"a.example.com": "glob-user"},
        ["*.example.com: written under the narrower key a.example.com"],
        id="a glob key in the file narrows to the host asked for",
    ),
    pytest.param(
        {"auths": {"a.example.com": cred("glob-user"), "b.example.org": cred("quay-user")}},
        ["*.example.com"],
        {"a.example.com": "glob-user"},
        [],
        id="a glob --registry keeps the keys it covers, as the kubelet matches globs",
    ),
    pytest.param(
        {"auths": {"https://index.docker.io/v1/": cred("hub-user"), "quay.io": cred("quay-user")}},
        ["docker.io"],
        {"https://index.docker.io/v1/": "hub-user"},
        [],
        id="Docker Hub credentials stay under the key docker login writes for --registry docker.io",
    ),
    pytest.param(
        {"auths": {"https://index.docker.io/v1/": cred("hub-user")}},
        ["docker.io/myorg"],
        {"docker.io/myorg": "hub-user"},
        ["https://index.docker.io/v1/: written under the narrower key docker.io/myorg"],
        id="Docker Hub credentials narrow to one organisation like any broader key",
    ),
    pytest.param(
        {"auths": {"https://quay.io/v2/team": cred("team-user")}},
        ["https://quay.io"],
        {"https://quay.io/v2/team": "team-user"},
        [],
        id="schemes and /v2/ prefixes are normalised as the kubelet does, keys kept as written",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user"), "ghcr.io": {"identitytoken": TOKEN}}},
        [],
        {"quay.io": "quay-user", "ghcr.io": "token"},
        ["ghcr.io: only an identity token; the kubelet ignores identitytoken"],
        id="an entry with only an identity token is kept with a warning that the kubelet "
        "will not use it",
    ),
    pytest.param(
        {
            "auths": {
                "quay.io": cred("quay-user"),
                "123456789012.dkr.ecr.us-east-1.amazonaws.com": {},
            },
            "credHelpers": {
                "123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
                "gcr.io": "gcloud",
            },
        },
        [],
        {"quay.io": "quay-user"},
        [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com: credentials are kept by the "
            "credential helper docker-credential-ecr-login (credHelpers), not in the file; "
            "cannot be exported, skipped",
            "gcr.io: credentials are kept by the credential helper docker-credential-gcloud",
        ],
        id="credHelpers registries cannot be exported and are skipped with a warning",
    ),
    pytest.param(
        {
            "auths": {"https://index.docker.io/v1/": {}, "quay.io": cred("quay-user")},
            "credsStore": "desktop",
        },
        [],
        {"quay.io": "quay-user"},
        [
            "https://index.docker.io/v1/: credentials are kept by the credential store "
            "docker-credential-desktop (credsStore), not in the file; cannot be exported"
        ],
        id="empty entries of a credsStore file are skipped with a warning, inline ones kept",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user")}, "credHelpers": {"gcr.io": "gcloud"}},
        ["quay.io"],
        {"quay.io": "quay-user"},
        [],
        id="skipped registries outside the --registry filter are not warned about",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user"), "empty.example.com": {}}},
        [],
        {"quay.io": "quay-user"},
        ["empty.example.com: no credentials in the file; skipped"],
        id="an entry without credentials and without a store is skipped with a warning",
    ),
    pytest.param(
        {"AUTHS": {"quay.io": {"Auth": cred("quay-user")["auth"]}}},
        [],
        {"quay.io": "quay-user"},
        [],
        id="field names in any case count, as Go's decoder reads them",
    ),
    pytest.param(
        {
            "quay.io": cred("quay-user", email="q@example.com"),
            "registry.redhat.io": cred("rh-user"),
        },
        ["registry.redhat.io"],
        {"registry.redhat.io": "rh-user"},
        [],
        id="a legacy .dockercfg file is read as a bare map of entries",
    ),
]


@pytest.mark.parametrize(("document", "registries", "expected", "warnings"), FILE_CASES)
def test_a_docker_config_file_becomes_a_secret(
    document: Mapping[str, Any],
    registries: list[str],
    expected: dict[str, str],
    warnings: list[str],
) -> None:
    built = build(document, registries)

    assert built.manifest["type"] == JSON_TYPE
    assert list(built.manifest["data"]) == [".dockerconfigjson"]
    assert built.manifest["metadata"] == {"name": "corp-pull", "namespace": "team-a"}
    assert users_by_key(built.manifest) == expected
    assert sorted(built.keys) == sorted(expected)
    for warning in warnings:
        assert any(warning in line for line in built.warnings), built.warnings
    if not warnings:
        assert built.warnings == ()
    assert_no_credentials(*built.warnings)


def test_a_config_json_can_be_written_as_a_legacy_dockercfg_secret() -> None:
    built = build(QUAY_AND_REDHAT, ["quay.io"], kind="dockercfg")

    assert built.manifest["type"] == CFG_TYPE
    assert list(built.manifest["data"]) == [".dockercfg"]
    payload = json.loads(base64.b64decode(built.manifest["data"][".dockercfg"]))
    assert payload == {"quay.io": cred("quay-user")}  # a bare map, no "auths"
    assert users_by_key(built.manifest) == {"quay.io": "quay-user"}


def test_extra_fields_of_an_entry_and_of_the_file_are_handled_as_docker_writes_them() -> None:
    document = {
        "auths": {"quay.io": cred("quay-user", email="q@example.com")},
        "HttpHeaders": {"User-Agent": "Docker-Client"},
        "psFormat": "table {{.ID}}",
    }

    built = build(document)

    payload = json.loads(base64.b64decode(built.manifest["data"][".dockerconfigjson"]))
    assert payload == {"auths": {"quay.io": cred("quay-user", email="q@example.com")}}


FILE_ERRORS = [
    pytest.param("{not json", [], "config.json: not valid JSON (", id="a file that is not JSON"),
    pytest.param("[1, 2]", [], "config.json: must be a JSON object", id="a JSON array"),
    pytest.param(
        {"auths": {"quay.io": {"auth": b64("no-colon-here")}}},
        [],
        "config.json (config.json): entry 'quay.io': field 'auth' must be base64 of "
        "'username:password'",
        id="an auth field the kubelet would reject fails before anything is written",
    ),
    pytest.param(
        {"auths": {"quay.io": {"password": 12}}},
        [],
        "entry 'quay.io': field 'password' must be a string",
        id="a field of the wrong type, which would fail every pull",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user")}, "credHelpers": ["gcloud"]},
        [],
        "credHelpers must map registries to helper names",
        id="a credHelpers that is not a map",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["ghcr.io"],
        "--registry ghcr.io: no registry with credentials in config.json matches it "
        "(registries it can export: quay.io, registry.redhat.io)",
        id="a --registry that matches no entry",
    ),
    pytest.param(
        {"auths": {"quay.io:8443": cred("quay-user")}},
        ["quay.io"],
        "--registry quay.io: no registry with credentials",
        id="a port is part of the registry, as for the kubelet",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay.io", "ghcr.io"],
        "--registry ghcr.io: no registry",
        id="every --registry must match something, not just one of them",
    ),
    pytest.param(
        {"auths": {"quay.io": cred("quay-user")}, "credHelpers": {"gcr.io": "gcloud"}},
        ["gcr.io"],
        "--registry gcr.io: no registry with credentials",
        id="a --registry whose only match is kept by a credential helper",
    ),
    pytest.param(
        {"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "osxkeychain"},
        [],
        "config.json: no registry credentials in the file that can be exported",
        id="a file whose credentials are all in a credential store",
    ),
    pytest.param({}, [], "no registry credentials in the file", id="an empty config.json"),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay.io/te*m"],
        "--registry 'quay.io/te*m': globs are only allowed in the host",
        id="a --registry with a glob in the path",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay.io?tag"],
        "'?' and '#' end a URL's host or path",
        id="a --registry with a query mark",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay..io"],
        "--registry 'quay..io' is not a registry",
        id="a --registry with an empty host label",
    ),
    pytest.param(
        QUAY_AND_REDHAT,
        ["quay[.]io"],
        "--registry 'quay[.]io': brackets may only enclose an IPv6 address",
        id="a --registry with brackets outside an IPv6 literal (the policy's own rule)",
    ),
]


@pytest.mark.parametrize(("document", "registries", "message"), FILE_ERRORS)
def test_a_docker_config_file_that_cannot_make_a_secret_is_refused_with_the_reason(
    document: Mapping[str, Any] | str, registries: list[str], message: str
) -> None:
    with pytest.raises(SecretCreateError) as caught:
        build(document, registries)

    assert message in str(caught.value)
    assert_no_credentials(str(caught.value), *caught.value.warnings)


def test_the_warnings_that_explain_a_refusal_travel_with_the_error() -> None:
    document = {"auths": {"gcr.io": {}}, "credHelpers": {"gcr.io": "gcloud"}}

    with pytest.raises(SecretCreateError) as caught:
        build(document, ["gcr.io"])

    assert caught.value.warnings == (
        "gcr.io: credentials are kept by the credential helper docker-credential-gcloud "
        "(credHelpers), not in the file; cannot be exported, skipped",
    )


# -- builder: from credentials ---------------------------------------------------------------

CREDENTIAL_CASES = [
    pytest.param(
        "registry.example.com",
        None,
        "dockerconfigjson",
        {
            "username": "robot",
            "password": "fake-typed-secret",
            "auth": b64("robot:fake-typed-secret"),
        },
        id="the entry carries auth and the plain fields, as kubectl writes it",
    ),
    pytest.param(
        "registry.example.com:5000/team",
        "robot@example.com",
        "dockerconfigjson",
        {
            "username": "robot",
            "password": "fake-typed-secret",
            "email": "robot@example.com",
            "auth": b64("robot:fake-typed-secret"),
        },
        id="an e-mail is kept and a port and path stay in the key",
    ),
    pytest.param(
        "https://index.docker.io/v1/",
        None,
        "dockercfg",
        {
            "username": "robot",
            "password": "fake-typed-secret",
            "auth": b64("robot:fake-typed-secret"),
        },
        id="the server is kept as written (Docker Hub's key) and dockercfg is a bare map",
    ),
]


@pytest.mark.parametrize(("server", "email", "secret_format", "entry"), CREDENTIAL_CASES)
def test_credentials_become_a_secret(
    server: str, email: str | None, secret_format: str, entry: dict[str, str]
) -> None:
    built = from_credentials(
        server,
        "robot",
        "fake-typed-secret",
        email,
        name="robot-pull",
        namespace=None,
        secret_format=secret_format,  # type: ignore[arg-type]
    )

    assert built.manifest["metadata"] == {"name": "robot-pull"}
    config = parse_secret(built.manifest)
    assert config.format == secret_format
    assert config.keys == (server,)
    assert dict(config.entries[server]) == entry
    raw = json.loads(base64.b64decode(next(iter(built.manifest["data"].values()))))
    assert raw == ({"auths": {server: entry}} if secret_format == "dockerconfigjson" else
                   {server: entry})  # fmt: skip
    assert built.warnings == ()


def test_a_password_with_colons_and_non_ascii_characters_survives_the_round_trip() -> None:
    secret = "fake:pass:wörd"
    built = from_credentials(
        "quay.io", "robot", secret, None, name="x", namespace="ns", secret_format="dockercfg"
    )

    entry = parse_secret(built.manifest).entries["quay.io"]
    assert base64.b64decode(entry["auth"]).decode() == f"robot:{secret}"


CREDENTIAL_ERRORS = [
    pytest.param(
        {"username": "ro:bot"},
        "--username must not contain ':'",
        id="a user name with a colon, which the kubelet would split wrongly",
    ),
    pytest.param({"username": ""}, "--username is empty", id="an empty user name"),
    pytest.param({"password": ""}, "missing password", id="an empty password"),
    pytest.param(
        {"server": "https://"}, "--server 'https://' is not a registry", id="a server without host"
    ),
    pytest.param(
        {"name": "Corp_Pull"}, "--name 'Corp_Pull' is not a valid Secret name", id="a bad name"
    ),
    pytest.param(
        {"namespace": "team.a"},
        "--namespace 'team.a' is not a valid namespace name",
        id="a bad namespace",
    ),
]


@pytest.mark.parametrize(("override", "message"), CREDENTIAL_ERRORS)
def test_credentials_that_cannot_make_a_secret_are_refused(
    override: dict[str, str], message: str
) -> None:
    values: dict[str, Any] = {
        "server": "quay.io",
        "username": "robot",
        "password": "fake-typed-secret",
        "name": "robot-pull",
        "namespace": "team-a",
        **override,
    }

    with pytest.raises(SecretCreateError) as caught:
        from_credentials(
            values["server"],
            values["username"],
            values["password"],
            None,
            name=values["name"],
            namespace=values["namespace"],
            secret_format="dockerconfigjson",
        )

    assert message in str(caught.value)
    assert_no_credentials(str(caught.value))


def test_the_strings_to_redact_cover_every_credential_form_but_not_the_email() -> None:
    built = from_credentials(
        "quay.io", "robot", "fake-typed-secret", "robot@example.com",
        name="x", namespace=None, secret_format="dockerconfigjson",
    )  # fmt: skip

    strings = built.secret_strings()

    assert "fake-typed-secret" in strings
    assert b64("robot:fake-typed-secret") in strings
    assert built.manifest["data"][".dockerconfigjson"] in strings
    assert "robot@example.com" not in strings


# -- the command, as a user runs it ----------------------------------------------------------


def cli() -> list[str]:
    """The installed console script, as a user runs it (``python -m`` if it is missing)."""
    script = Path(sys.executable).with_name("pullsecret-injector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*cli(), "secret", "create", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    assert_no_credentials(result.stderr)
    return result


@pytest.fixture
def files(tmp_path: Path) -> Path:
    docker = tmp_path / ".docker"
    docker.mkdir()
    (docker / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "quay.io": cred("quay-user"),
                    "registry.redhat.io": cred("rh-user", email="rh@example.com"),
                    "https://index.docker.io/v1/": {},
                },
                "credsStore": "desktop",
            },
            indent=2,
        )
    )
    (tmp_path / ".dockercfg").write_text(json.dumps({"quay.io": cred("quay-user")}))
    (tmp_path / "broken.json").write_text('{"auths": {"quay.io": ')
    return tmp_path


def test_keep_one_team_of_quay_from_a_config_json(files: Path) -> None:
    result = run("--name", "quay-team-pull", "--namespace", "team-a",
                 "--docker-config", ".docker/config.json", "--registry", "quay.io/team",
                 cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Secret"
    assert manifest["metadata"] == {"name": "quay-team-pull", "namespace": "team-a"}
    assert manifest["type"] == JSON_TYPE
    assert users_by_key(manifest) == {"quay.io/team": "quay-user"}
    assert result.stderr == (
        "warning: quay.io: written under the narrower key quay.io/team (as --registry asked), "
        "so the kubelet uses these credentials only for quay.io/team\n"
    )


def test_a_whole_config_json_skips_what_its_credential_store_keeps(files: Path) -> None:
    result = run("--name", "all", "--docker-config", ".docker/config.json", cwd=files)

    assert result.returncode == 0, result.stderr
    assert users_by_key(yaml.safe_load(result.stdout)) == {
        "quay.io": "quay-user",
        "registry.redhat.io": "rh-user",
    }
    assert result.stderr == (
        "warning: https://index.docker.io/v1/: credentials are kept by the credential store "
        "docker-credential-desktop (credsStore), not in the file; cannot be exported, skipped\n"
    )


def test_credentials_with_the_password_on_stdin_print_json(files: Path) -> None:
    result = run("--name", "robot-pull", "--namespace", "ci", "--server", "registry.example.com",
                 "--username", "robot", "--password-stdin", "--email", "robot@example.com",
                 "-o", "json", cwd=files, stdin="fake-typed-secret\n")  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    manifest = json.loads(result.stdout)
    assert manifest["metadata"] == {"name": "robot-pull", "namespace": "ci"}
    entry = parse_secret(manifest).entries["registry.example.com"]
    assert entry == {
        "username": "robot",
        "password": "fake-typed-secret",  # one trailing newline is not part of it
        "email": "robot@example.com",
        "auth": b64("robot:fake-typed-secret"),
    }


def test_a_password_on_the_command_line_works_but_is_warned_about(files: Path) -> None:
    result = run("--name", "robot-pull", "--server", "quay.io", "--username", "robot",
                 "--password", "fake-typed-secret", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "warning: --password is visible to other users" in result.stderr
    entry = parse_secret(yaml.safe_load(result.stdout)).entries["quay.io"]
    assert entry["password"] == "fake-typed-secret"


def test_a_legacy_dockercfg_file_to_a_dockercfg_secret(files: Path) -> None:
    result = run("--name", "legacy", "--docker-config", ".dockercfg", "--type", "dockercfg",
                 cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    assert manifest["type"] == CFG_TYPE
    assert list(manifest["data"]) == [".dockercfg"]
    assert users_by_key(manifest) == {"quay.io": "quay-user"}


def test_a_docker_config_on_stdin(files: Path) -> None:
    content = (files / ".docker" / "config.json").read_text()

    result = run("--name", "rh", "--docker-config", "-", "--registry", "registry.redhat.io",
                 "-o", "json", cwd=files, stdin=content)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert users_by_key(json.loads(result.stdout)) == {"registry.redhat.io": "rh-user"}


USAGE_ERRORS = [
    pytest.param(
        ["--name", "x", "--docker-config", "missing.json"],
        None,
        "error: cannot read missing.json: No such file or directory\n",
        id="an unreadable file exits 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", ".docker"],
        None,
        "error: cannot read .docker: Is a directory\n",
        id="a directory exits 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", "broken.json"],
        None,
        "error: broken.json: not valid JSON (Expecting value: line 1 column 23 (char 22))\n",
        id="invalid JSON exits 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", ".docker/config.json", "--registry", "ghcr.io"],
        None,
        "error: --registry ghcr.io: no registry with credentials in .docker/config.json "
        "matches it (registries it can export: quay.io, registry.redhat.io)\n",
        id="no matching registry exits 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", ".docker/config.json", "--registry", "docker.io"],
        None,
        "warning: https://index.docker.io/v1/: credentials are kept by the credential store "
        "docker-credential-desktop (credsStore), not in the file; cannot be exported, skipped\n"
        "error: --registry docker.io: no registry with credentials in .docker/config.json "
        "matches it (registries it can export: quay.io, registry.redhat.io)\n",
        id="a registry kept by the credential store exits 2 and says why",
    ),
    pytest.param(
        ["--name", "x", "--server", "quay.io", "--username", "robot"],
        None,
        "error: missing password: give it on standard input with --password-stdin\n",
        id="no password at all (and no terminal to ask on) exits 2",
    ),
    pytest.param(
        ["--name", "x", "--server", "quay.io", "--username", "robot", "--password-stdin"],
        "",
        "error: missing password: standard input was empty\n",
        id="an empty standard input for --password-stdin exits 2",
    ),
    pytest.param(
        ["--name", "x", "--server", "quay.io", "--password-stdin"],
        "fake-typed-secret",
        "error: --server needs --username\n",
        id="a server without a user name exits 2",
    ),
    pytest.param(
        ["--name", "x", "--server", "quay.io", "--username", "robot", "--registry", "quay.io"],
        None,
        "error: --registry: only with --docker-config (it filters the file)\n",
        id="--registry with --server exits 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", ".dockercfg", "--username", "robot"],
        None,
        "error: --username: only with --server, not with --docker-config\n",
        id="credential options with a file exit 2",
    ),
    pytest.param(
        ["--name", "x", "--docker-config", ".dockercfg", "--kubeconfig", "kubeconfig"],
        None,
        "error: --kubeconfig, --context: only with --apply\n",
        id="--kubeconfig without --apply exits 2",
    ),
    pytest.param(
        [
            "--name",
            "x",
            "--docker-config",
            ".dockercfg",
            "--apply",
            "--kubeconfig",
            "no-such-kubeconfig",
        ],
        None,
        "error: cannot load no-such-kubeconfig: Invalid kube-config file. "
        "No configuration found.\n",
        id="--apply with an unreadable kubeconfig exits 2 before any request",
    ),
    pytest.param(
        ["--name", "Bad_Name", "--docker-config", ".dockercfg"],
        None,
        "error: --name 'Bad_Name' is not a valid Secret name (lower-case DNS subdomain: "
        "a-z, 0-9, '-' and '.', at most 253 characters)\n",
        id="an invalid Secret name exits 2",
    ),
]


@pytest.mark.parametrize(("args", "stdin", "stderr"), USAGE_ERRORS)
def test_unusable_input_exits_2_with_the_reason_and_prints_nothing(
    files: Path, args: list[str], stdin: str | None, stderr: str
) -> None:
    result = run(*args, cwd=files, stdin=stdin)

    assert (result.returncode, result.stderr) == (2, stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--name", "x"],
            "one of the arguments --docker-config --server is required",
            id="no source exits 2",
        ),
        pytest.param(
            ["--name", "x", "--docker-config", "a", "--server", "b"],
            "argument --server: not allowed with argument --docker-config",
            id="two sources exit 2",
        ),
        pytest.param(
            ["--name", "x", "--docker-config", "a", "--apply", "-o", "json"],
            "argument -o/--output: not allowed with argument --apply",
            id="printing and applying at once exits 2",
        ),
    ],
)
def test_argument_errors_exit_2(files: Path, args: list[str], message: str) -> None:
    result = run(*args, cwd=files)

    assert result.returncode == 2
    assert message in result.stderr


# -- applying: the create-or-replace protocol, against a scripted API ------------------------


class ScriptedCore:
    """Stands in for ``CoreV1Api``: each call pops its next scripted answer (an exception is
    raised, a dict is returned as a response body). Records the calls."""

    def __init__(self, **script: list[Any]) -> None:
        self.script = script
        self.calls: list[tuple[str, Any]] = []

    def _answer(self, name: str, body: Any = None) -> Any:
        self.calls.append((name, body))
        answer = self.script[name].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return _Response(json.dumps(answer).encode())

    def create_namespaced_secret(self, namespace: str, body: Any, **_: Any) -> Any:
        return self._answer("create", body)

    def read_namespaced_secret(self, name: str, namespace: str, **_: Any) -> Any:
        return self._answer("read")

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        return self._answer("replace", json.loads(json.dumps(body)))


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data = data


def api_error(status: int, message: str = "") -> Exception:
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    exc: Exception = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message": message})  # type: ignore[attr-defined]
    return exc


def robot_secret(namespace: str = "team-a") -> Built:
    return from_credentials(
        "quay.io", "robot", "fake-typed-secret", None,
        name="robot-pull", namespace=namespace, secret_format="dockerconfigjson",
    )  # fmt: skip


def existing(built: Built, data: str = "e30=", version: str = "7") -> dict[str, Any]:
    return {
        "metadata": {"name": "robot-pull", "namespace": "team-a", "resourceVersion": version,
                     "labels": {"team": "a"}},
        "type": built.manifest["type"],
        "data": {".dockerconfigjson": data},
    }  # fmt: skip


def test_a_concurrent_change_is_read_again_and_the_replace_retried_on_the_new_version() -> None:
    from webhook.k8s.secretcreate import _apply  # noqa: PLC0415

    built = robot_secret()
    core = ScriptedCore(
        create=[api_error(409)],
        read=[existing(built, version="7"), existing(built, version="8")],
        replace=[api_error(409), {}],
    )

    assert _apply(core, built.manifest, built.secret_strings()) == "replaced"

    replaced = [body for name, body in core.calls if name == "replace"]
    assert [body["metadata"]["resourceVersion"] for body in replaced] == ["7", "8"]
    assert replaced[-1]["data"] == built.manifest["data"]
    assert replaced[-1]["metadata"]["labels"] == {"team": "a"}


def test_a_secret_deleted_between_create_and_read_is_created_again() -> None:
    from webhook.k8s.secretcreate import _apply  # noqa: PLC0415

    built = robot_secret()
    core = ScriptedCore(create=[api_error(409), {}], read=[api_error(404)])

    assert _apply(core, built.manifest, ()) == "created"


def test_equal_data_is_not_written_again() -> None:
    from webhook.k8s.secretcreate import _apply  # noqa: PLC0415

    built = robot_secret()
    same = existing(built, data=built.manifest["data"][".dockerconfigjson"])
    core = ScriptedCore(create=[api_error(409)], read=[same], replace=[])

    assert _apply(core, built.manifest, ()) == "unchanged"


def test_api_messages_are_reported_with_every_credential_redacted() -> None:
    from webhook.k8s.secretcreate import ApplyError, _apply  # noqa: PLC0415

    built = robot_secret()
    data = built.manifest["data"][".dockerconfigjson"]
    echo = f"invalid: data {data}, auth {b64('robot:fake-typed-secret')}, fake-typed-secret"
    core = ScriptedCore(create=[api_error(422, echo)])

    with pytest.raises(ApplyError) as caught:
        _apply(core, built.manifest, built.secret_strings())

    assert str(caught.value) == (
        "cannot create secret team-a/robot-pull: HTTP 422: "
        "invalid: data <redacted>, auth <redacted>, <redacted>"
    )
    assert not caught.value.usage


def test_a_secret_that_keeps_changing_gives_up_after_a_few_attempts() -> None:
    from webhook.k8s.secretcreate import ApplyError, _apply  # noqa: PLC0415

    built = robot_secret()
    core = ScriptedCore(
        create=[api_error(409)] * 5, read=[existing(built)] * 5, replace=[api_error(409)] * 5
    )

    with pytest.raises(ApplyError, match="kept changing while being applied; try again"):
        _apply(core, built.manifest, ())


def test_without_a_password_option_the_password_is_asked_on_the_terminal(tmp_path: Path) -> None:
    """A user at a terminal is prompted (echo off, via /dev/tty); stdout stays the manifest."""
    import fcntl  # noqa: PLC0415
    import os  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import termios  # noqa: PLC0415

    master, slave = pty.openpty()

    def own_terminal() -> None:  # the pty becomes the child's controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [*cli(), "secret", "create", "--name", "robot-pull", "--server", "quay.io",
         "--username", "robot", "-o", "json"],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        start_new_session=True, preexec_fn=own_terminal,  # noqa: PLW1509 - test-only
    )  # fmt: skip
    os.close(slave)
    try:
        prompt = b""
        while b": " not in prompt:
            prompt += os.read(master, 1024)
        os.write(master, b"fake-typed-secret\n")
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        os.close(master)

    assert prompt.decode().strip() == "Password for robot at quay.io:"
    assert process.returncode == 0, stderr
    assert_no_credentials(stderr.decode())
    entry = parse_secret(json.loads(stdout)).entries["quay.io"]
    assert entry["password"] == "fake-typed-secret"
