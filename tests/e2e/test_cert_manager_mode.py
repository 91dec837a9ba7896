"""cert-manager mode: the chart's Issuer/Certificate objects pass server-side validation
against cert-manager's own CRDs (fetched, pinned, from the Go module proxy)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.support import wait_until
from tools.controlplane import REPO, ControlPlane

CERT_MANAGER = "github.com/cert-manager/cert-manager@v1.19.1"


@pytest.fixture(scope="module")
def cert_manager_crds(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Download the pinned module (cached in GOMODCACHE) and apply its CRDs as plain CRDs."""
    workdir = tmp_path_factory.mktemp("cert-manager")
    result = subprocess.run(
        ["go", "mod", "download", "-json", CERT_MANAGER],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    crds = Path(json.loads(result.stdout)["Dir"]) / "deploy" / "crds"
    for path in sorted(crds.glob("cert-manager.io_*.yaml")):
        applied = control_plane.kubectl("apply", "--server-side", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
    for name in ("issuers", "certificates"):
        # kubectl wait errors out (instead of waiting) while a fresh CRD has no
        # status.conditions yet, so ask again until it answers, bounded.
        crd = f"crd/{name}.cert-manager.io"
        wait_until(
            lambda crd=crd: (
                control_plane.kubectl(
                    "wait", "--for=condition=Established", crd, "--timeout=10s"
                ).returncode
                == 0
            ),
            f"{crd} to be Established",
            timeout=60,
            interval=0.5,
        )


def test_cert_manager_mode_renders_objects_the_api_server_accepts(
    control_plane: ControlPlane, cert_manager_crds: None, tmp_path: Path
) -> None:
    rendered = subprocess.run(
        [
            str(control_plane.bin_dir / "helm"),
            "template",
            "psi",
            str(REPO / "charts" / "pullsecret-injector"),
            "--namespace",
            "default",
            "--set",
            "certificates.mode=cert-manager",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Issuer", "Certificate", "MutatingWebhookConfiguration"} <= kinds
    webhook = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].startswith(
        "default/"
    )
    serving = next(o for o in objects if o["kind"] == "Certificate" and not o["spec"].get("isCA"))
    assert "psi-pullsecret-injector-webhook.default.svc" in serving["spec"]["dnsNames"]
    manifest = tmp_path / "cert-manager-mode.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "certificate.cert-manager.io/" in result.stdout
