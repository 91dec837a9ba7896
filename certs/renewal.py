"""Does a certificate need replacing, and why: a pure function of the certificate and a time.

The self-managed certificate mode asks this on every controller pass. The answers follow
cert-manager's defaults: renew a serving certificate once two thirds of its lifetime have
passed, immediately if it is expired, not yet valid, not signed by the current CA, or does not
cover every host it must; introduce a new CA once two thirds of the CA's lifetime have passed
(with an overlap during which both CAs are trusted).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["Verdict", "ca_verdict", "covers", "serving_verdict"]

RENEW_FRACTION = 2 / 3


@dataclass(frozen=True, slots=True)
class Verdict:
    renew: bool
    reason: str


def _lifetime_verdict(cert: x509.Certificate, now: datetime, what: str) -> Verdict:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now >= end:
        return Verdict(True, f"{what} expired at {end.isoformat()}")
    if now < start:
        return Verdict(True, f"{what} is not valid until {start.isoformat()}")
    renew_at = start + (end - start) * RENEW_FRACTION
    if now >= renew_at:
        return Verdict(True, f"{what} passed 2/3 of its lifetime ({renew_at.isoformat()})")
    return Verdict(
        False, f"{what} valid until {end.isoformat()}, renewal due {renew_at.isoformat()}"
    )


def ca_verdict(ca: x509.Certificate | None, now: datetime) -> Verdict:
    """Should a new CA be introduced?"""
    if ca is None:
        return Verdict(True, "no CA yet")
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return Verdict(True, "stored CA certificate is not a CA (no basicConstraints)")
    if not constraints.ca:
        return Verdict(True, "stored CA certificate is not a CA")
    return _lifetime_verdict(ca, now, "CA")


def serving_verdict(
    cert: x509.Certificate | None, ca: x509.Certificate, hosts: Sequence[str], now: datetime
) -> Verdict:
    """Should the serving certificate be re-issued from ``ca`` for ``hosts``?"""
    if cert is None:
        return Verdict(True, "no serving certificate yet")
    if not _signed_by(cert, ca):
        return Verdict(True, "serving certificate is not signed by the current CA")
    missing = [h for h in hosts if not covers(cert, h)]
    if missing:
        return Verdict(True, f"serving certificate does not cover {', '.join(missing)}")
    return _lifetime_verdict(cert, now, "serving certificate")


def covers(cert: x509.Certificate, host: str) -> bool:
    """Exact SAN membership (no wildcard certificates are issued here)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in names.get_values_for_type(x509.DNSName)
    return address in names.get_values_for_type(x509.IPAddress)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    public_key = ca.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
