"""The image built from the Dockerfile, checked the way a restricted pod would run it.

``tools/build-image.sh`` builds it here without an engine or a registry (buildah FROM a Debian
12 base made with mmdebstrap; cached, so only the first run on a machine pays, ~2.5 min on two
idle cores). These tests read the OCI archive as a registry would serve it, unpack its layers,
and run its commands with ``tools/ocirootfs.py``: an arbitrary UID in group 0 (OpenShift's
restricted-v2), no capabilities, a read-only root filesystem, only ``/tmp`` writable, and the TLS
Secret and policy mounted read-only. The default command then serves a real AdmissionReview over
TLS. Nothing is timed: waits are bounded and only fail when the process has died or never
answered.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import pki
from tools import ocirootfs
from tools.controlplane import free_port
from tools.image import ImageInfo, build_image_info

REPO = Path(__file__).resolve().parents[2]
# A UID from an OpenShift namespace range (restricted-v2 assigns one, in group 0): no entry in
# /etc/passwd, no home, nothing owned by it in the image.
ARBITRARY_UID = 1000680000
# The first build on a machine downloads packages and wheels; pytest's default 300 s is for
# tests, not for building an OS image on two busy cores.
pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        shutil.which("unshare") is None or not Path("/proc/self/ns/mnt").exists(),
        reason="needs unshare(1) and mount namespaces",
    ),
]

# Paths buildah and mmdebstrap would write on the host if not pointed elsewhere.
HOST_PATHS = (
    "/etc/containers",
    "/etc/cni",
    "/var/lib/containers",
    "/var/lib/cni",
    "/run/containers",
    "/usr/share/containers",
    "/etc/pip.conf",
)


def host_state() -> dict[str, list[str]]:
    """Mount points of this mount namespace and what exists under HOST_PATHS."""
    mounts = sorted(
        " ".join(line.split()[4:5] + line.split(" - ")[1].split()[:1])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    listed: dict[str, list[str]] = {"mounts": mounts}
    for path in map(Path, HOST_PATHS):
        listed[str(path)] = sorted(str(p) for p in path.rglob("*")) if path.is_dir() else []
        if path.exists() and not path.is_dir():
            listed[str(path)] = [str(path)]
    return listed


@dataclass(frozen=True)
class Build:
    info: ImageInfo
    before: dict[str, list[str]]
    after: dict[str, list[str]]


@pytest.fixture(scope="module")
def build() -> Build:
    before = host_state()
    info = build_image_info()
    return Build(info=info, before=before, after=host_state())


@pytest.fixture(scope="module")
def config(build: Build) -> ocirootfs.ImageConfig:
    return ocirootfs.read_config(build.info.archive)


@pytest.fixture(scope="module")
def rootfs(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = ocirootfs.unpack(build.info.archive, tmp_path_factory.mktemp("image") / "rootfs")
    yield root
    shutil.rmtree(root)  # ~400 MB: do not leave it to pytest's retention of old temp dirs


def pins() -> dict[str, str]:
    """constraints.txt as {normalized name: version}."""
    result = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            result[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return result


def project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def run_as(
    rootfs: Path,
    config: ocirootfs.ImageConfig,
    argv: list[str],
    uid: int = ARBITRARY_UID,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    return ocirootfs.run(
        rootfs,
        argv,
        uid=uid,
        gid=0,
        env=config.env | extra_env,
        workdir=config.working_dir,
    )


# -- the build ----------------------------------------------------------------------------------


def test_building_leaves_the_host_as_it_was(build: Build) -> None:
    """No mount, no /etc/containers or /etc/cni, no /var/lib/containers blob cache."""
    assert build.after == build.before


def test_the_archive_holds_one_oci_image_under_the_reported_digest(build: Build) -> None:
    descriptor, manifest = ocirootfs.read_manifest(build.info.archive)
    assert descriptor["digest"] == build.info.digest
    assert descriptor["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == build.info.reference
    assert build.info.reference == f"localhost/pullsecret-injector:{project_version()}"
    layers = manifest["layers"]
    assert layers, manifest
    assert {layer["mediaType"] for layer in layers} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    assert build.info.archive_bytes == build.info.archive.stat().st_size


# -- the config ---------------------------------------------------------------------------------


def test_the_config_runs_the_webhook_as_a_numeric_non_root_user(
    config: ocirootfs.ImageConfig,
) -> None:
    # Numeric, so the kubelet can enforce runAsNonRoot without a runAsUser in the pod.
    assert re.fullmatch(r"[1-9][0-9]*", config.user), config.user
    assert config.entrypoint == []
    assert config.cmd == ["gunicorn", "--config", "/app/gunicorn.conf.py"]
    assert config.working_dir == "/app"
    assert config.env["PATH"].startswith("/opt/venv/bin:")
    assert config.env["HOME"] == "/tmp"
    assert config.env["TMPDIR"] == "/tmp"
    assert config.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert config.exposed_ports == ["8080/tcp", "8443/tcp"]
    assert config.labels["org.opencontainers.image.title"] == "pullsecret-injector"
    assert config.labels["org.opencontainers.image.version"] == project_version()
    assert (config.os, config.architecture) == ("linux", "amd64")


# -- the filesystem, as a restricted pod ---------------------------------------------------------

PROBE = """
import importlib, importlib.metadata, json, os, sys
modules = ["webhook", "webhook.app", "webhook.cli", "certs", "flask", "gunicorn", "kubernetes",
           "jsonpatch", "cryptography.x509", "yaml", "prometheus_client"]
files = {m: getattr(importlib.import_module(m), "__file__", None) for m in modules}
def attempt(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        return 0
    except OSError as exc:
        return exc.errno
dists = {d.metadata["Name"].lower().replace("_", "-"): d.version
         for d in importlib.metadata.distributions()}
print(json.dumps({
    "version": list(sys.version_info[:2]), "executable": sys.executable,
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "files": files, "dists": dists,
    "write": {p: attempt(p) for p in ("/opt/venv/probe", "/app/probe", "/probe", "/tmp/probe")},
}))
"""


@pytest.mark.parametrize("uid", [ARBITRARY_UID, None], ids=["openshift-uid", "image-user"])
def test_python_and_the_app_import_as_any_uid_on_a_read_only_root(
    rootfs: Path, config: ocirootfs.ImageConfig, uid: int | None
) -> None:
    run_uid = int(config.user) if uid is None else uid
    result = run_as(rootfs, config, ["python", "-c", PROBE], uid=run_uid)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout)
    assert probe["version"] == [3, 11]
    assert probe["executable"] == "/opt/venv/bin/python"
    assert (probe["uid"], probe["gid"], probe["groups"]) == (run_uid, 0, [])
    for module, file in probe["files"].items():
        assert str(file).startswith("/opt/venv/lib/python3.11/site-packages/"), module
    # The image runs what CI tested: every installed distribution is at its pinned version.
    wanted = pins()
    for name, version in probe["dists"].items():
        if name in wanted:
            assert version == wanted[name], name
    assert probe["dists"]["pullsecret-injector"] == project_version()
    # The venv is group-writable for group 0 (chmod g=u): only the read-only mount stops this.
    assert probe["write"]["/opt/venv/probe"] == errno.EROFS
    assert probe["write"]["/app/probe"] in (errno.EROFS, errno.EACCES)
    assert probe["write"]["/probe"] in (errno.EROFS, errno.EACCES)
    assert probe["write"]["/tmp/probe"] == 0


def test_the_entry_points_start(rootfs: Path, config: ocirootfs.ImageConfig) -> None:
    cli = run_as(rootfs, config, ["pullsecret-injector", "--help"])
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "controller" in cli.stdout
    controller = run_as(rootfs, config, ["pullsecret-injector", "controller", "--help"])
    assert controller.returncode == 0, controller.stderr[-3000:]
    gunicorn = run_as(rootfs, config, ["gunicorn", "--version"])
    assert gunicorn.returncode == 0, gunicorn.stderr[-3000:]
    assert f"gunicorn (version {pins()['gunicorn']})" in gunicorn.stdout + gunicorn.stderr


# -- the default command, serving --------------------------------------------------------------

POLICY = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\nrules: []\n"


def admission_review(uid: str) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/team/app:1"}]},
    }
    request = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "team-a",
        "object": pod,
    }
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(document).encode()


def tls_volume(directory: Path) -> Path:
    """A TLS Secret's files as the kubelet mounts them (readable by group 0)."""
    now = datetime.now(UTC)
    ca = pki.new_ca("image-test-ca", now, days=1)
    leaf = pki.issue(ca, "pullsecret-injector", now=now, days=1, hosts=["127.0.0.1"])
    directory.mkdir(mode=0o755)
    for name, data in (
        ("ca.crt", ca.cert_pem),
        ("tls.crt", leaf.cert_pem),
        ("tls.key", leaf.key_pem),
    ):
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o640)
    return directory


def get(
    url: str, context: ssl.SSLContext | None = None, body: bytes | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_answering(server: ocirootfs.RootfsProcess, url: str, attempts: int = 240) -> None:
    """Poll ``url`` for a 200 while the process lives; bounded by attempts, never timed."""
    for _ in range(attempts):
        if not server.running():
            pytest.fail(f"the webhook exited early:\n{server.output()[-4000:]}")
        with contextlib.suppress(OSError):
            if get(url)[0] == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"the webhook never answered {url}:\n{server.output()[-4000:]}")


def test_the_default_command_serves_reviews_as_a_restricted_pod(
    rootfs: Path, config: ocirootfs.ImageConfig, tmp_path: Path
) -> None:
    """The image's CMD, unchanged, with the chart's kind of environment: TLS Secret at /tls, a
    policy file (``PSI_CLUSTER=false``: no API server here), read-only root, arbitrary UID."""
    tls = tls_volume(tmp_path / "tls")
    policy = tmp_path / "policy"
    policy.mkdir(mode=0o755)
    (policy / "policy.yaml").write_text(POLICY)
    port, health = free_port(), free_port()
    env = config.env | {
        "PSI_CLUSTER": "false",
        "PSI_POLICY_FILE": "/policy/policy.yaml",
        "PSI_TLS_CERT_FILE": "/tls/tls.crt",
        "PSI_TLS_KEY_FILE": "/tls/tls.key",
        "PSI_BIND_ADDRESS": "127.0.0.1",  # this test shares the host's network namespace
        "PSI_PORT": str(port),
        "PSI_HEALTH_PORT": str(health),
        "PSI_WORKERS": "1",
        "PSI_THREADS": "2",
        "PSI_POD_NAME": "image-test-0",
    }
    server = ocirootfs.start(
        rootfs,
        config.cmd,
        uid=ARBITRARY_UID,
        gid=0,
        env=env,
        log=tmp_path / "webhook.log",
        workdir=config.working_dir,
        binds={"/tls": tls, "/policy": policy},
    )
    try:
        # /livez, not /readyz: readiness comes from the live backend's watches, and with
        # PSI_CLUSTER=false there are none (the chart always runs against a cluster).
        wait_answering(server, f"http://127.0.0.1:{health}/livez")
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        status, body = get(f"https://127.0.0.1:{port}/mutate", context, admission_review("u-1"))
        assert status == 200, body
        response = json.loads(body)["response"]
        assert response["uid"] == "u-1"
        assert response["allowed"] is True
    finally:
        exit_status = server.stop()
    # SIGTERM to PID 1 of the namespace, as the kubelet sends it: a clean, graceful exit.
    assert exit_status == 0, server.output()[-4000:]
    assert "webhook ready to serve" in server.output()
