"""Every label, annotation and object key pullsecret-injector owns or relies on, in one place.

Ownership is decided by these strings: a Secret carrying ``MANAGED_BY_LABEL`` with our value
is one we may update or delete, and nothing else is. Spelling one of them differently in two
places would make the controller disown its copies or, worse, claim someone else's, so the
core, the shells, the CLI and the chart all take them from here (the chart is checked against
this module by ``tests/chart``).
"""

from __future__ import annotations

__all__ = [
    "CA_INTRODUCED_ANNOTATION",
    "FORCE_RENEWAL_ANNOTATION",
    "GRANT_ANNOTATION",
    "HASH_ANNOTATION",
    "LEDGER_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MIRROR_POD_ANNOTATION",
    "NAMESPACE_NAME_LABEL",
    "OPT_OUT_KEY",
    "OPT_OUT_VALUE",
    "OWNED_KEYS",
    "RULES_ANNOTATION",
    "SOURCE_ANNOTATION",
    "STATUS_DATA_KEY",
    "WARNING_PREFIX",
    "status_configmap_name",
]

KEY_PREFIX = "pullsecret-injector.io/"

# -- ownership of the objects we write (copies, RoleBindings, certificate Secrets) -------------

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
"""The one label we put on what we own: its value ``MANAGED_BY_VALUE`` means "ours"."""
MANAGED_BY_VALUE = "pullsecret-injector"

SOURCE_ANNOTATION = KEY_PREFIX + "source"
"""On a copy: ``namespace/name`` of its source (an annotation: names may be 253 characters,
label values only 63)."""
HASH_ANNOTATION = KEY_PREFIX + "content-hash"
"""On a copy: hash of its type and data, compared with the desired copy's without reading data."""
RULES_ANNOTATION = KEY_PREFIX + "rules"
"""On a copy: the rules that want it here (informational)."""
GRANT_ANNOTATION = KEY_PREFIX + "grant"
"""On an OpenShift image-puller RoleBinding: the policy grant it implements."""

# -- the controller's Lease and certificates ------------------------------------------------

LEDGER_ANNOTATION = KEY_PREFIX + "managed-names"
"""On the controller's Lease: every copy name in use, kept until no copy of it is left."""
FORCE_RENEWAL_ANNOTATION = KEY_PREFIX + "force-renewal"
"""On the TLS Secret (self-managed mode): set by an operator to renew the certificate now."""
CA_INTRODUCED_ANNOTATION = KEY_PREFIX + "ca-introduced-at"
"""On the CA Secret: when the newest CA entered the trust bundle (rollover bookkeeping)."""

# -- the controller's status document ------------------------------------------------------

STATUS_DATA_KEY = "status.json"
"""Data key of the status document in the ConfigMap the leader controller publishes."""


def status_configmap_name(webhook_configuration: str) -> str:
    """The status ConfigMap sits in the release namespace, named after the release's
    MutatingWebhookConfiguration, so ``status`` finds it from the webhook configuration it
    discovers (the chart names that configuration after the release's full name)."""
    return f"{webhook_configuration}-status"


# -- what users set to steer us ------------------------------------------------------------

OPT_OUT_KEY = KEY_PREFIX + "inject"
"""Label (namespace or object) or annotation (Pod, ServiceAccount) that opts out."""
OPT_OUT_VALUE = "false"

# -- Kubernetes' own keys we rely on -------------------------------------------------------

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (immutable): name selectors can use it."""
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
"""Marks a static pod's mirror pod, which may not reference Secrets."""

WARNING_PREFIX = "pullsecret-injector: "
"""Starts every admission warning and denial message, so users can tell who said it."""

OWNED_KEYS = frozenset(
    {
        SOURCE_ANNOTATION,
        HASH_ANNOTATION,
        RULES_ANNOTATION,
        GRANT_ANNOTATION,
        LEDGER_ANNOTATION,
        FORCE_RENEWAL_ANNOTATION,
        CA_INTRODUCED_ANNOTATION,
        OPT_OUT_KEY,
    }
)
"""Every ``pullsecret-injector.io/`` key we read or write (tests check nothing else appears)."""
