"""Certificate primitives: a CA, and leaf certificates it signs.

Pure functions over ``cryptography`` objects: the clock is a parameter and nothing touches
files or the network, so tests can build a CA "in the past" and prove renewal decisions, and
the e2e harness can issue its apiserver, client and webhook certificates from the same code
the product uses. Keys are ECDSA P-256: small, fast to generate on a 2-core box, and accepted
by every Kubernetes TLS stack.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "Issued",
    "generate",
    "issue",
    "load",
    "new_ca",
    "new_private_key_pem",
    "public_key_pem",
    "service_hosts",
]

# Backdate notBefore a little: clocks of the API server and this process may disagree.
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as parsed objects and PEM."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_private_key_pem() -> bytes:
    """A fresh PKCS#8 EC key (e.g. a ServiceAccount token signing key)."""
    return _new_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(private_key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key (kube-apiserver's SA verification key)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def new_ca(common_name: str, now: datetime, days: int) -> Issued:
    """A self-signed CA that may only sign leaf certificates (path length 0)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate=cert, key=key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    now: datetime,
    days: int,
    hosts: Sequence[str] = (),
    organizations: Sequence[str] = (),
    server: bool = True,
    client: bool = False,
) -> Issued:
    """A leaf certificate signed by ``ca``.

    ``hosts`` become SANs (IP addresses as IP SANs, everything else as DNS names): Go's TLS
    stack, which the API server uses to call webhooks, ignores the CN. For client certificates
    the API server reads the user from CN and the groups from O.
    """
    key = _new_key()
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(now + timedelta(days=days), ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
    return Issued(certificate=builder.sign(ca.key, hashes.SHA256()), key=key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def service_hosts(service: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    """Every DNS form a client may use to reach a Service (the API server uses ``svc.ns.svc``)."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def generate(
    hosts: Sequence[str], now: datetime, days: int, *, ca_days: int | None = None
) -> tuple[bytes, bytes, bytes]:
    """A fresh CA and a serving certificate for ``hosts``: ``(ca_pem, cert_pem, key_pem)``."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host")
    ca = new_ca("pullsecret-injector-ca", now, ca_days if ca_days is not None else days * 10)
    leaf = issue(ca, hosts[0], now=now, days=days, hosts=hosts)
    return ca.cert_pem, leaf.cert_pem, leaf.key_pem


def load(cert_pem: bytes, key_pem: bytes) -> Issued:
    """Parse PEM back into an ``Issued`` (e.g. a CA kept in a Secret)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only EC private keys are supported")
    return Issued(certificate=cert, key=key)
