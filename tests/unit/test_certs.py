"""Certificates: what ``certs generate`` writes, proved by real TLS handshakes on loopback,
and the renewal verdicts the self-managed mode acts on."""

from __future__ import annotations

import base64
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.files import write_atomic
from certs.pki import Issued, generate, issue, load, new_ca, public_key_pem, service_hosts
from certs.renewal import Verdict, ca_verdict, covers, serving_verdict

SERVICE, NAMESPACE = "psi", "tools"
SANS = [
    "psi",
    "psi.tools",
    "psi.tools.svc",
    "psi.tools.svc.cluster.local",
    "127.0.0.1",
]


def cli() -> list[str]:
    """The installed console script, as a user runs it (``python -m`` if it is missing)."""
    script = Path(sys.executable).with_name("pullsecret-injector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli(), *args], capture_output=True, text=True, timeout=60, check=False)


@dataclass(frozen=True)
class Generated:
    out: Path
    result: subprocess.CompletedProcess[str]

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.out / name).read_bytes())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("generate") / "not" / "there" / "yet"
    result = run_cli(
        "certs", "generate", "--service", SERVICE, "--namespace", NAMESPACE,
        "--out", str(out), "--host", "127.0.0.1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Generated(out, result)


def server_context(generated: Generated) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(generated.out / "tls.crt"), str(generated.out / "tls.key"))
    return context


# -- certs generate, as a user runs it ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        pytest.param("ca.key", 0o600, id="the CA key is readable by its owner only"),
        pytest.param("tls.key", 0o600, id="the serving key is readable by its owner only"),
        pytest.param("ca.crt", 0o644, id="the CA certificate is world-readable"),
        pytest.param("tls.crt", 0o644, id="the serving certificate is world-readable"),
    ],
)
def test_generate_writes_each_file_with_its_mode(
    generated: Generated, name: str, mode: int
) -> None:
    assert stat.S_IMODE((generated.out / name).stat().st_mode) == mode


def test_generate_writes_exactly_four_files(generated: Generated) -> None:
    assert sorted(p.name for p in generated.out.iterdir()) == [
        "ca.crt",
        "ca.key",
        "tls.crt",
        "tls.key",
    ]


def test_generate_prints_the_cabundle_of_the_ca_it_wrote(generated: Generated) -> None:
    bundles = [
        line.removeprefix("caBundle: ")
        for line in generated.result.stdout.splitlines()
        if line.startswith("caBundle: ")
    ]

    assert len(bundles) == 1
    assert base64.b64decode(bundles[0], validate=True) == (generated.out / "ca.crt").read_bytes()


def test_generate_names_every_host_it_covers(generated: Generated) -> None:
    assert ", ".join(SANS) in generated.result.stdout


def test_generated_keys_belong_to_their_certificates(generated: Generated) -> None:
    for prefix in ("ca", "tls"):
        key = serialization.load_pem_private_key(
            (generated.out / f"{prefix}.key").read_bytes(), password=None
        )
        assert key.public_key() == generated.cert(f"{prefix}.crt").public_key(), prefix


def test_generated_serving_certificate_is_signed_by_the_generated_ca(
    generated: Generated,
) -> None:
    generated.cert("tls.crt").verify_directly_issued_by(generated.cert("ca.crt"))


@pytest.mark.parametrize("hostname", SANS)
def test_a_verifying_client_completes_a_handshake_for_each_service_name(
    generated: Generated, tls_server: Callable[..., Any], hostname: str
) -> None:
    context = server_context(generated)
    server = tls_server(lambda: context)

    conn = server.connect(generated.out / "ca.crt", hostname)

    assert server.exchange(conn, b"ping") == b"echo:ping"
    served = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
    assert served == generated.cert("tls.crt")


@pytest.mark.parametrize(
    "hostname",
    [
        pytest.param("psi.other.svc", id="the same service name in another namespace"),
        pytest.param("psi.tools.svc.cluster", id="a truncated cluster domain"),
        pytest.param("evil.example.com", id="an unrelated name"),
        pytest.param("127.0.0.2", id="an IP address that was not asked for"),
    ],
)
def test_a_verifying_client_rejects_a_name_outside_the_sans(
    generated: Generated, tls_server: Callable[..., Any], hostname: str
) -> None:
    context = server_context(generated)
    server = tls_server(lambda: context)

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        server.connect(generated.out / "ca.crt", hostname)


def test_a_client_trusting_another_ca_rejects_the_certificate(
    generated: Generated, tls_server: Callable[..., Any], tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(new_ca("someone else's CA", datetime.now(UTC), 1).cert_pem)
    context = server_context(generated)
    server = tls_server(lambda: context)

    with pytest.raises(ssl.SSLCertVerificationError, match="issuer"):
        server.connect(other_ca, "psi.tools.svc")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            ["--cluster-domain", "corp.internal"],
            "psi.tools.svc.corp.internal",
            id="a custom cluster domain is covered",
        ),
        pytest.param(["--host", "webhook.example.com"], "webhook.example.com", id="an extra name"),
        pytest.param(["--host", "::1"], "::1", id="an IPv6 address"),
    ],
)
def test_generate_options_reach_the_certificate(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    result = run_cli(
        "certs", "generate", "--service", SERVICE, "--namespace", NAMESPACE,
        "--out", str(tmp_path), *extra,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert covers(cert, expected)
    assert covers(cert, "psi.tools.svc")


def test_generate_without_a_namespace_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("certs", "generate", "--service", SERVICE, "--out", str(tmp_path))

    assert result.returncode == 2
    assert "--namespace" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- pki -------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        names.get_values_for_type(x509.DNSName),
        [str(ip) for ip in names.get_values_for_type(x509.IPAddress)],
    )


def test_a_new_ca_is_a_ca_that_can_only_sign_leaves() -> None:
    ca = new_ca("test CA", T0, 10).certificate

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)


def test_a_new_ca_is_backdated_for_clock_skew() -> None:
    ca = new_ca("test CA", T0, 10).certificate

    assert ca.not_valid_before_utc == T0 - SKEW
    assert ca.not_valid_after_utc == T0 + timedelta(days=10)


def test_a_serving_leaf_covers_every_host_as_dns_or_ip_name() -> None:
    ca = new_ca("test CA", T0, 10)
    hosts = [*service_hosts("psi", "tools"), "127.0.0.1", "::1", "webhook.example.com"]

    leaf = issue(ca, "psi.tools.svc", now=T0, days=1, hosts=hosts).certificate

    dns, ips = sans(leaf)
    assert dns == [*SANS[:4], "webhook.example.com"]
    assert ips == ["127.0.0.1", "::1"]
    assert all(covers(leaf, host) for host in hosts)


def test_a_serving_leaf_is_for_server_auth_only_and_not_a_ca() -> None:
    ca = new_ca("test CA", T0, 10)

    leaf = issue(ca, "psi.tools.svc", now=T0, days=1, hosts=["psi"]).certificate

    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf.verify_directly_issued_by(ca.certificate)


def test_a_client_leaf_carries_user_and_groups() -> None:
    ca = new_ca("test CA", T0, 10)

    leaf = issue(
        ca, "system:admin", now=T0, days=1, organizations=["system:masters"],
        server=False, client=True,
    ).certificate  # fmt: skip

    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "system:admin"
    ]
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]


def test_a_leaf_never_outlives_its_ca() -> None:
    ca = new_ca("test CA", T0, 30)

    leaf = issue(ca, "psi", now=T0, days=365, hosts=["psi"]).certificate

    assert leaf.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_generate_returns_a_ca_and_a_leaf_it_signed_for_the_hosts() -> None:
    ca_pem, cert_pem, key_pem = generate(["psi.tools.svc", "127.0.0.1"], T0, 30)

    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf = load(cert_pem, key_pem).certificate
    leaf.verify_directly_issued_by(ca)
    assert sans(leaf) == (["psi.tools.svc"], ["127.0.0.1"])
    assert ca.not_valid_after_utc == T0 + timedelta(days=300)


def test_generate_refuses_a_certificate_for_no_host() -> None:
    with pytest.raises(ValueError, match="at least one host"):
        generate([], T0, 30)


def test_load_round_trips_and_public_key_pem_matches() -> None:
    ca = new_ca("test CA", T0, 10)

    again = load(ca.cert_pem, ca.key_pem)

    assert again.certificate == ca.certificate
    assert public_key_pem(ca.key_pem) == ca.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_load_refuses_a_non_ec_key() -> None:
    ca = new_ca("test CA", T0, 10)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(ValueError, match="EC"):
        load(ca.cert_pem, rsa_pem)


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_write_atomic_sets_the_exact_mode_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "deep" / "dir" / "tls.key"
    old_umask = os.umask(0o077 if mode & 0o044 else 0o000)
    try:
        write_atomic(target, b"material", mode)
    finally:
        os.umask(old_umask)

    assert target.read_bytes() == b"material"
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_write_atomic_replaces_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "tls.crt"
    write_atomic(target, b"old", 0o644)

    write_atomic(target, b"new", 0o644)

    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["tls.crt"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "tls.crt"
    write_atomic(target, b"old", 0o644)

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new", 0o644)

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["tls.crt"]


# -- renewal verdicts ------------------------------------------------------------------------

CA = new_ca("psi CA", T0, 3650)
HOSTS = [*service_hosts(SERVICE, NAMESPACE), "127.0.0.1"]
LEAF = issue(CA, "psi.tools.svc", now=T0, days=90, hosts=HOSTS)
LEAF_START = T0 - SKEW
LEAF_END = T0 + timedelta(days=90)
LEAF_RENEW_AT = LEAF_START + (LEAF_END - LEAF_START) * 2 / 3  # exact: 90 d 5 min divides by 3
OTHER_CA = new_ca("other CA", T0, 3650)
SAME_NAME_CA = new_ca("psi CA", T0, 3650)
CA_START = T0 - SKEW
CA_END = T0 + timedelta(days=3650)
CA_RENEW_AT = CA_START + (CA_END - CA_START) * 2 / 3


def _leaf_from(ca: Issued, hosts: list[str] = HOSTS) -> x509.Certificate:
    return issue(ca, "psi.tools.svc", now=T0, days=90, hosts=hosts).certificate


def _ca_without_basic_constraints() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "v1-style CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class ServingCase:
    cert: x509.Certificate | None
    now: datetime
    renew: bool
    reason: str
    hosts: tuple[str, ...] = tuple(HOSTS)
    ca: x509.Certificate = CA.certificate


def serving(case_id: str, **kwargs: Any) -> Any:
    return pytest.param(ServingCase(**kwargs), id=case_id)


SERVING_CASES = [
    serving(
        "a fresh certificate is kept",
        cert=LEAF.certificate,
        now=T0,
        renew=False,
        reason="valid until",
    ),
    serving(
        "a certificate one second before two thirds of its lifetime is kept",
        cert=LEAF.certificate,
        now=LEAF_RENEW_AT - timedelta(seconds=1),
        renew=False,
        reason="renewal due",
    ),
    serving(
        "a certificate at two thirds of its lifetime is renewed",
        cert=LEAF.certificate,
        now=LEAF_RENEW_AT,
        renew=True,
        reason="2/3 of its lifetime",
    ),
    serving(
        "a certificate at its notAfter is renewed as expired",
        cert=LEAF.certificate,
        now=LEAF_END,
        renew=True,
        reason="expired",
    ),
    serving(
        "a long-expired certificate is renewed as expired",
        cert=LEAF.certificate,
        now=LEAF_END + timedelta(days=400),
        renew=True,
        reason="expired",
    ),
    serving(
        "a certificate from the future is renewed",
        cert=LEAF.certificate,
        now=LEAF_START - timedelta(seconds=1),
        renew=True,
        reason="not valid until",
    ),
    serving(
        "a certificate at its notBefore is kept",
        cert=LEAF.certificate,
        now=LEAF_START,
        renew=False,
        reason="valid until",
    ),
    serving(
        "no certificate yet is issued",
        cert=None,
        now=T0,
        renew=True,
        reason="no serving certificate yet",
    ),
    serving(
        "a certificate signed by another CA is renewed",
        cert=_leaf_from(OTHER_CA),
        now=T0,
        renew=True,
        reason="not signed by the current CA",
    ),
    serving(
        "a certificate signed by a different key under the same CA name is renewed",
        cert=_leaf_from(SAME_NAME_CA),
        now=T0,
        renew=True,
        reason="not signed by the current CA",
    ),
    serving(
        "a certificate lacking a DNS name it must cover is renewed, naming it",
        cert=LEAF.certificate,
        hosts=(*HOSTS, "psi.tools.svc.corp.internal"),
        now=T0,
        renew=True,
        reason="does not cover psi.tools.svc.corp.internal",
    ),
    serving(
        "a certificate lacking an IP it must cover is renewed, naming it",
        cert=LEAF.certificate,
        hosts=(*HOSTS, "10.96.0.10"),
        now=T0,
        renew=True,
        reason="does not cover 10.96.0.10",
    ),
    serving(
        "a certificate without any SAN is renewed",
        cert=_leaf_from(CA, hosts=[]),
        now=T0,
        renew=True,
        reason="does not cover psi",
    ),
    serving(
        "a certificate covering more names than required is kept",
        cert=LEAF.certificate,
        hosts=("psi.tools.svc",),
        now=T0,
        renew=False,
        reason="valid until",
    ),
]


@pytest.mark.parametrize("c", SERVING_CASES)
def test_serving_verdict(c: ServingCase) -> None:
    verdict = serving_verdict(c.cert, c.ca, c.hosts, c.now)

    assert verdict.renew is c.renew, verdict.reason
    assert c.reason in verdict.reason


@pytest.mark.parametrize(
    ("ca", "now", "expected"),
    [
        pytest.param(None, T0, Verdict(True, "no CA yet"), id="no CA yet: introduce one"),
        pytest.param(CA.certificate, T0, False, id="a fresh CA is kept"),
        pytest.param(
            CA.certificate,
            CA_RENEW_AT - timedelta(seconds=1),
            False,
            id="a CA just before two thirds of its lifetime is kept",
        ),
        pytest.param(
            CA.certificate, CA_RENEW_AT, True, id="a CA at two thirds of its lifetime is replaced"
        ),
        pytest.param(CA.certificate, CA_END, True, id="an expired CA is replaced"),
        pytest.param(
            CA.certificate, CA_START - timedelta(seconds=1), True, id="a CA from the future"
        ),
        pytest.param(
            LEAF.certificate,
            T0,
            Verdict(True, "stored CA certificate is not a CA"),
            id="a leaf stored as the CA is replaced",
        ),
    ],
)
def test_ca_verdict(ca: x509.Certificate | None, now: datetime, expected: Verdict | bool) -> None:
    verdict = ca_verdict(ca, now)

    if isinstance(expected, Verdict):
        assert verdict == expected
    else:
        assert verdict.renew is expected, verdict.reason


def test_a_stored_ca_without_basic_constraints_is_replaced() -> None:
    verdict = ca_verdict(_ca_without_basic_constraints(), T0 + timedelta(days=1))

    assert verdict.renew
    assert "not a CA" in verdict.reason
