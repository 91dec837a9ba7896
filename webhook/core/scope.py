"""Where the policy may act at all: the exclusions every decision obeys.

The MutatingWebhookConfiguration's selectors keep most excluded objects away from the webhook,
but they are an optimisation, not the guarantee: the controller's pre-provisioning never goes
through them, and anyone who can reach the webhook port can post an AdmissionReview for any
namespace. So the webhook, the controller and ``explain`` all ask this one rule:

* some namespaces are never reached: ``kube-system``, ``kube-public`` and ``kube-node-lease``
  always, the release namespace (the webhook must never gate its own pods) and the chart's
  ``admissionWebhook.excludeNamespaces``;
* a namespace labelled ``<opt-out key>: "false"`` is opted out, and so is a Pod or
  ServiceAccount carrying that key as a label or an annotation;
* a namespace whose labels are not known (not delivered by the watch yet, and the lookup
  failed) is reached only by rules that do not look at labels: a selector is never evaluated
  against labels we guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.core.conventions import OPT_OUT_KEY, OPT_OUT_VALUE

__all__ = ["ALWAYS_EXCLUDED", "Exclusions"]

ALWAYS_EXCLUDED: Mapping[str, str] = {
    "kube-system": "kube-system is always excluded",
    "kube-public": "kube-public is always excluded",
    "kube-node-lease": "kube-node-lease is always excluded",
}


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Namespaces and objects no rule reaches, each with the reason shown to operators."""

    namespaces: Mapping[str, str] = field(default_factory=lambda: dict(ALWAYS_EXCLUDED))
    """Excluded namespace name -> why."""
    opt_out_key: str = OPT_OUT_KEY

    @classmethod
    def of(
        cls, release_namespace: str = "", excluded: Iterable[str] = (), opt_out_key: str = ""
    ) -> Exclusions:
        """The exclusions of a release: the fixed ones, its own namespace, and the extra ones."""
        namespaces = dict(ALWAYS_EXCLUDED)
        for name in excluded:
            namespaces.setdefault(name, f"{name} is in excludeNamespaces")
        if release_namespace:
            namespaces[release_namespace] = (
                f"{release_namespace} is pullsecret-injector's own namespace (always excluded)"
            )
        return cls(namespaces, opt_out_key or OPT_OUT_KEY)

    def namespace(self, name: str, labels: Mapping[str, str] | None) -> str | None:
        """Why no rule reaches namespace ``name``, or ``None`` when rules may."""
        why = self.namespaces.get(name)
        if why is not None:
            return why
        if labels is not None and labels.get(self.opt_out_key) == OPT_OUT_VALUE:
            return f"namespace {name} is opted out ({self.opt_out_key}={OPT_OUT_VALUE})"
        return None

    def object(self, kind: str, metadata: Mapping[str, Any]) -> str | None:
        """Why this Pod or ServiceAccount is left alone, or ``None``."""
        for where in ("labels", "annotations"):
            values = metadata.get(where)
            # type() first: what JSON decodes to, without the ABC check (every review)
            if (type(values) is dict or isinstance(values, Mapping)) and values.get(
                self.opt_out_key
            ) == OPT_OUT_VALUE:
                singular = where[:-1]
                return f"{kind} is opted out ({singular} {self.opt_out_key}={OPT_OUT_VALUE})"
        return None
