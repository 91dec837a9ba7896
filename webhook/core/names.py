"""Kubernetes object names and label syntax, as the API server validates them.

The policy names Secrets, namespaces and label keys the API server will check again later;
validating with the same grammar here turns a typo into a located policy error instead of a
watch that never lists or a copy the API server refuses at pod-creation time.
"""

from __future__ import annotations

import re

__all__ = [
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "LABEL_NAME",
    "LABEL_VALUE",
    "is_dns_label",
    "is_dns_subdomain",
    "is_label_key",
    "is_label_value",
]

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""Namespace names, rule and grant names (at most 63 characters)."""
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""Secret and ServiceAccount names (at most 253 characters)."""
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and DNS1123_LABEL.fullmatch(value) is not None


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: a DNS-subdomain prefix and a 63-character name."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not is_dns_subdomain(prefix)):
        return False
    return len(name) <= 63 and LABEL_NAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None
