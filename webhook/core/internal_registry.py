"""OpenShift's internal registry: another project's image needs an image-puller grant.

Images in ``image-registry.openshift-image-registry.svc:5000/<project>/...`` are authorised by
the registry per project (``system:image-puller`` on that project), not by pull secrets. A pod
pulling another project's image fails unless a RoleBinding lets its ServiceAccount pull there;
the policy's ``imagePullerGrants`` create such bindings, so a cross-project image that no
grant covers gets a warning at admission instead of an ``ImagePullBackOff`` later.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhook.core.images import ImageRef
from webhook.core.messages import shorten
from webhook.core.policy import Policy

__all__ = ["ungranted_pull"]


def ungranted_pull(
    policy: Policy, ref: ImageRef, namespace: str, labels: Mapping[str, str], account: str
) -> str | None:
    """Why ``namespace/account`` cannot pull ``ref`` from the internal registry, or ``None``."""
    if not policy.checks_internal_registry or ref.domain != policy.internal_registry:
        return None
    project = ref.path.split("/", 1)[0]
    if project == namespace:
        return None
    if any(
        grant.allows(project, namespace, labels, account) for grant in policy.image_puller_grants
    ):
        return None
    return (
        f"{shorten(ref.repository)} is project {project}'s image; no imagePullerGrants entry "
        f"lets {namespace}/{account} pull it, so the registry will refuse the pull"
    )
