"""The decision: (policy, admitted object, cluster view) -> JSONPatch, warnings, copies.

Pure: no HTTP, no API client, no clock. The HTTP shell decodes the AdmissionReview into an
``AdmissionRequest``, calls ``plan`` and encodes the result; the Kubernetes shell creates the
copies listed in ``Plan.copies``. The same function backs ``explain``.

Guarantees a reader can check here:

* existing ``imagePullSecrets`` are never removed or reordered (the ServiceAccount admission
  plugin and OpenShift put entries there before us); missing names are appended with one
  ``add .../-`` each, or one ``add`` of the whole list when the field is absent or null;
* nothing changes means no ops, and applying the ops then planning again gives no ops;
* a secret that is missing, of the wrong type or malformed is never injected (a malformed
  pull secret fails *every* pull of the pod): the pod is admitted with a warning, unless the
  rule says ``onFailure: Deny``;
* source namespace and secret names come only from the policy, never from the object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webhook.core.clusterview import ClusterView
from webhook.core.conventions import WARNING_PREFIX
from webhook.core.copies import CopySpec, desired_copies, namespace_labels_or_default
from webhook.core.images import ImageRef, InvalidImageReference, parse_image
from webhook.core.matcher import RuleIndex, RuleMatch
from webhook.core.policy import Policy, Rule, SecretRef
from webhook.core.registry import Keyring, glob_match
from webhook.core.review import AdmissionRequest, JsonPatchOp

__all__ = [
    "ImageDecision",
    "Injection",
    "Plan",
    "plan",
]

MAX_WARNING_LENGTH = 256  # the API server truncates longer admission warnings
MAX_WARNINGS = 20

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, slots=True)
class Injection:
    """One secret a rule gives the object (for metrics and logs)."""

    rule: str
    secret: str
    """Name in the object's namespace."""
    registry: str
    """The pattern that matched, or ``serviceaccount`` for ServiceAccount injection."""


@dataclass(frozen=True, slots=True)
class ImageDecision:
    """What was decided for one container image, and why (shown by ``explain``)."""

    field: str
    """``spec.containers[0]`` etc."""
    container: str
    image: str
    repository: str | None
    error: str | None = None
    matches: tuple[RuleMatch, ...] = ()
    secrets: tuple[str, ...] = ()
    """Secrets this image gets (names in the namespace)."""
    kubelet_keys: tuple[str, ...] = ()
    """``auths`` keys the kubelet would try for this image, across all injected secrets."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome. Empty ``ops`` means "admit unchanged"."""

    namespace: str
    ops: tuple[JsonPatchOp, ...] = ()
    warnings: tuple[str, ...] = ()
    copies: tuple[CopySpec, ...] = ()
    """Copies that must exist in ``namespace`` before the object can use them."""
    injections: tuple[Injection, ...] = ()
    images: tuple[ImageDecision, ...] = ()
    deny: str | None = None
    """Set only when a rule with ``onFailure: Deny`` could not be satisfied."""
    namespace_known: bool = True
    """False when the namespace's labels were not in the view (the shell may look it up)."""
    reason: str = ""
    """One line for the log: what was decided."""


@dataclass
class _Context:
    """One decision in progress: its inputs, and what it has found so far."""

    policy: Policy
    view: ClusterView
    derived: _Derived
    namespace: str
    namespace_known: bool
    scope: _Scope
    warnings: list[str] = field(default_factory=list)
    wanted: dict[str, CopySpec] = field(default_factory=dict)
    """Copies the injected names need in this namespace (checked against targets at the end)."""
    injections: list[Injection] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    service_account: str = "default"
    """The pod's ServiceAccount (internal-registry grants may be per account)."""

    @classmethod
    def start(cls, policy: Policy, view: ClusterView, namespace: str) -> _Context:
        labels, known = namespace_labels_or_default(view, namespace)
        derived = _derived(policy, view)
        scope = derived.scope(namespace, labels)
        return cls(policy, view, derived, namespace, known, scope)

    @property
    def copies(self) -> Mapping[str, CopySpec]:
        return self.scope.copies

    def warn(self, message: str) -> None:
        _add_warning(self.warnings, message)

    def result(
        self,
        ops: tuple[JsonPatchOp, ...],
        added: Sequence[str],
        reason: str,
        images: Sequence[ImageDecision] = (),
    ) -> _Decided:
        """Everything decided from the object and the policy; targets are looked at later."""
        return _Decided(
            ops=ops,
            warnings=tuple(self.warnings),
            wanted=tuple(self.wanted.values()),
            injections=tuple(i for i in self.injections if i.secret in added),
            images=tuple(images),
            deny=_deny_message(self.deny),
            reason=reason,
        )

    def finish(self, decided: _Decided, ensure_only: Sequence[str] | None = None) -> Plan:
        """Check the wanted copies against what the namespace holds right now."""
        warnings = list(decided.warnings)
        ensure: list[CopySpec] = []
        for spec in decided.wanted:
            target = self.view.target_secret(self.namespace, spec.name)
            if target is None:
                if ensure_only is None or spec.name in ensure_only:
                    ensure.append(spec)  # missing: create it before the pod pulls
            elif not target.managed:
                _add_warning(
                    warnings,
                    f"Secret {spec.name} in {self.namespace} is not managed by "
                    "pullsecret-injector; injected by name, its content is left untouched",
                )
        return Plan(
            namespace=self.namespace,
            ops=decided.ops,
            warnings=tuple(warnings),
            copies=tuple(ensure),
            injections=decided.injections,
            images=decided.images,
            deny=decided.deny,
            namespace_known=self.namespace_known,
            reason=decided.reason,
        )

    # -- images ---------------------------------------------------------------------------

    def decide_images(
        self, spec: Mapping[str, Any], fields: Sequence[str], only: frozenset[str] | None = None
    ) -> list[ImageDecision]:
        match = self.derived.index.match
        applicable = self.scope.applicable
        decisions: list[ImageDecision] = []
        for field_name in fields:
            for position, container in enumerate(_list(spec.get(field_name))):
                container_map = _mapping(container)
                name = str(container_map.get("name", ""))
                if only is None or name in only:
                    where = f"spec.{field_name}[{position}]"
                    decisions.append(
                        self.decide_image(match, applicable, container_map, where, name)
                    )
        return self.cross_check(decisions)

    def decide_image(
        self,
        match: Callable[[str], tuple[RuleMatch, ...]],
        applicable: frozenset[str],
        container: Mapping[str, Any],
        where: str,
        name: str,
    ) -> ImageDecision:
        image = container.get("image")
        if not isinstance(image, str) or not image:
            return ImageDecision(where, name, str(image or ""), None, error="no image")
        try:
            ref = parse_image(image)
        except InvalidImageReference as exc:
            self.warn(f"{where} ({name}): {_short(str(exc), 160)}; no pull secret injected")
            return ImageDecision(where, name, image, None, error=str(exc))
        self.check_internal_registry(ref, where, name)
        matches = tuple(m for m in match(ref.repository) if m.rule.name in applicable)
        secrets: list[str] = []
        for rule_match in matches:
            for secret in rule_match.rule.secrets:
                if self.usable(rule_match.rule, secret):
                    secrets.append(secret.target_name)
                    self.injections.append(
                        Injection(rule_match.rule.name, secret.target_name, rule_match.patterns[0])
                    )
        return ImageDecision(
            where,
            name,
            image,
            ref.repository,
            matches=matches,
            secrets=tuple(dict.fromkeys(secrets)),
        )

    def check_internal_registry(self, ref: ImageRef, where: str, name: str) -> None:
        """OpenShift: pulling another project's internal-registry image needs a grant."""
        if not self.policy.checks_internal_registry or ref.domain != self.policy.internal_registry:
            return
        project = ref.path.split("/", 1)[0]
        if project == self.namespace:
            return
        labels = dict(self.scope.key[1])
        if any(
            grant.allows(project, self.namespace, labels, self.service_account)
            for grant in self.policy.image_puller_grants
        ):
            return
        self.warn(
            f"{where} ({name}): {_short(ref.repository)} is project {project}'s image; no "
            f"imagePullerGrants entry lets {self.namespace}/{self.service_account} pull it, "
            "so the registry will refuse the pull"
        )

    def usable(self, rule: Rule, ref: SecretRef) -> bool:
        """Can ``ref`` be injected? Records the copy to ensure, or the warning/denial."""
        source = self.view.source_secret(ref.namespace, ref.name)
        problem = None
        if source is None:
            problem = f"source secret {ref.source} not found"
        elif source.config is None:
            problem = f"source secret {ref.source} is not a usable pull secret ({source.problem})"
        if problem is not None:
            self.warn(f"rule {rule.name}: {problem}; not injecting {ref.target_name}")
            if rule.on_failure == "Deny":
                self.deny.append(f"rule {rule.name} requires {ref.target_name}: {problem}")
            return False
        spec = self.copies[ref.target_name]
        if spec.subset is not None and not spec.subset:
            self.warn(
                f"rule {rule.name}: {ref.source} has no auths entry for the granted registries; "
                f"not injecting {ref.target_name}"
            )
            return False
        if not spec.is_source_itself:
            self.wanted[spec.name] = spec
        return True

    def cross_check(self, decisions: list[ImageDecision]) -> list[ImageDecision]:
        """Warn when injected secrets hold no key the kubelet would use for an image.

        All of a pod's pull secrets share one keyring, so keys are looked up together (a key
        in one secret can block another's Docker Hub fallback, exactly as on the node).
        """
        secrets = tuple(dict.fromkeys(s for decision in decisions for s in decision.secrets))
        keyring, keys_by_secret = self.derived.keyring(self.scope, secrets)
        checked: list[ImageDecision] = []
        for decision in decisions:
            if decision.repository is None or not decision.secrets:
                checked.append(decision)
                continue
            used = tuple(dict.fromkeys(keyring.lookup(decision.repository)))
            checked.append(replace(decision, kubelet_keys=used))
            for rule_match in decision.matches:
                rule_secrets = [s.target_name for s in rule_match.rule.secrets]
                rule_keys = {k for s in rule_secrets for k in keys_by_secret.get(s, ())}
                if rule_keys and not rule_keys.intersection(used):
                    self.warn(
                        f"rule {rule_match.rule.name}: {', '.join(rule_secrets)} hold no auths "
                        f"key the kubelet uses for {_short(decision.repository)}; "
                        "the pull may fail or go anonymous"
                    )
        return checked


def plan(policy: Policy, request: AdmissionRequest, view: ClusterView) -> Plan:
    """Decide what ``request``'s object needs. Never raises on odd objects: it warns."""
    obj = request.object if isinstance(request.object, Mapping) else {}
    metadata = _mapping(obj.get("metadata"))
    namespace = request.namespace or str(metadata.get("namespace") or "")
    if not namespace:
        return Plan(namespace="", reason="skipped: no namespace in request or object")
    if request.kind == "Pod" and request.sub_resource == "ephemeralcontainers":
        ctx = _Context.start(policy, view, namespace)
        decided, existing = _plan_ephemeral(ctx, obj, request.old_object)
        return ctx.finish(decided, ensure_only=existing)
    if request.kind == "Pod" and request.sub_resource == "" and request.operation == "CREATE":
        ctx = _Context.start(policy, view, namespace)
        return ctx.finish(_plan_pod_memoised(ctx, obj))
    if request.kind == "ServiceAccount" and request.operation == "CREATE":
        ctx = _Context.start(policy, view, namespace)
        return ctx.finish(_plan_service_account(ctx, obj))
    return Plan(
        namespace=namespace,
        reason=f"skipped: {request.kind} {request.operation} {request.sub_resource}".strip(),
    )


# -- pods -----------------------------------------------------------------------------------


def _plan_pod_memoised(ctx: _Context, pod: Mapping[str, Any]) -> _Decided:
    """Pods of one workload repeat the same decision: key it on what it depends on."""
    spec = _mapping(pod.get("spec"))
    key = _pod_signature(ctx, spec)
    if key is None:
        return _plan_pod(ctx, pod)
    memo = ctx.derived.pods
    decided = memo.get(key)
    if decided is None:
        decided = _plan_pod(ctx, pod)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = decided
    return decided


def _pod_signature(ctx: _Context, spec: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Everything ``_plan_pod`` reads, or None when the object is too odd to key on."""
    containers: list[tuple[str, object, object]] = []
    for field_name in CONTAINER_FIELDS:
        value = spec.get(field_name)
        if value is None:
            continue
        if not isinstance(value, list):
            return None
        for container in value:
            if not isinstance(container, Mapping):
                return None
            image, name = container.get("image"), container.get("name", "")
            if not isinstance(image, str) or not isinstance(name, str):
                return None
            containers.append((field_name, name, image))
    pull_secrets = spec.get("imagePullSecrets")
    if pull_secrets is not None and not isinstance(pull_secrets, list):
        return None
    existing = tuple(_existing_names(pull_secrets)) if pull_secrets is not None else None
    shape = None if pull_secrets is None else len(pull_secrets)
    return (ctx.scope.key, tuple(containers), existing, shape, _service_account(spec))


def _plan_pod(ctx: _Context, pod: Mapping[str, Any]) -> _Decided:
    spec = _mapping(pod.get("spec"))
    ctx.service_account = _service_account(spec)
    images = ctx.decide_images(spec, CONTAINER_FIELDS)
    existing = _existing_names(spec.get("imagePullSecrets"))
    wanted = list(dict.fromkeys(name for image in images for name in image.secrets))
    ops = _append_ops("/spec/imagePullSecrets", spec.get("imagePullSecrets"), existing, wanted)
    added = [name for name in wanted if name not in existing]
    return ctx.result(ops, added, _reason(added, wanted, images), images)


def _effective_keys(spec: CopySpec, view: ClusterView) -> tuple[str, ...]:
    """The ``auths`` keys the copy will carry (re-keyed ones for a credential subset)."""
    source = view.source_secret(spec.source_namespace, spec.source_name)
    if source is None or source.config is None:
        return ()
    if spec.subset is None:
        return source.config.keys
    return tuple(dict.fromkeys(new for _, new in spec.subset))


# -- ephemeral containers --------------------------------------------------------------------


def _plan_ephemeral(
    ctx: _Context, pod: Mapping[str, Any], old_pod: Mapping[str, Any] | None
) -> tuple[_Decided, list[str]]:
    """Pull secrets of a running pod cannot change: say what is missing, and how to fix it."""
    spec = _mapping(pod.get("spec"))
    old_spec = _mapping(_mapping(old_pod).get("spec"))
    old_names = {str(_mapping(c).get("name")) for c in _list(old_spec.get("ephemeralContainers"))}
    new_names = frozenset(
        str(_mapping(c).get("name"))
        for c in _list(spec.get("ephemeralContainers"))
        if str(_mapping(c).get("name")) not in old_names
    )
    images = ctx.decide_images(spec, ("ephemeralContainers",), only=new_names)
    existing = _existing_names(spec.get("imagePullSecrets"))
    for image in images:
        missing = [s for s in image.secrets if s not in existing]
        if missing:
            ctx.warn(
                f"ephemeral container {image.container} ({_short(image.image)}) needs "
                f"{', '.join(missing)}, which this running pod lacks and cannot gain; "
                "recreate the pod to pull it"
            )
    reason = f"ephemeral containers {sorted(new_names)}: warnings only"
    return ctx.result((), (), reason, images), existing


# -- service accounts --------------------------------------------------------------------


def _plan_service_account(ctx: _Context, account: Mapping[str, Any]) -> _Decided:
    """Like ``secrets link <sa> <secret> --for=pull``, at creation."""
    name = str(_mapping(account.get("metadata")).get("name") or "")
    if not name:
        return ctx.result((), (), "serviceaccount without a name: skipped")
    wanted: list[str] = []
    for rule_name in ctx.scope.ordered_rules:
        rule = ctx.policy.rule(rule_name)
        if any(glob_match(pattern, name) for pattern in rule.service_accounts.names):
            for ref in rule.secrets:
                if ctx.usable(rule, ref):
                    wanted.append(ref.target_name)
                    ctx.injections.append(Injection(rule.name, ref.target_name, "serviceaccount"))
    wanted = list(dict.fromkeys(wanted))
    existing = _existing_names(account.get("imagePullSecrets"))
    ops = _append_ops("/imagePullSecrets", account.get("imagePullSecrets"), existing, wanted)
    added = [n for n in wanted if n not in existing]
    reason = f"serviceaccount {name}: " + (f"added {added}" if added else "no change")
    return ctx.result(ops, added, reason)


# -- shared helpers ---------------------------------------------------------------------------


_MEMO_LIMIT = 8192


@dataclass(frozen=True)
class _Scope:
    """What the policy means in one namespace (for its current labels)."""

    key: tuple[str, tuple[tuple[str, str], ...]]
    """(namespace, sorted labels): identifies the scope in other caches."""
    copies: Mapping[str, CopySpec]
    """Every copy the namespace should hold; each applicable rule wants at least one."""
    applicable: frozenset[str]
    ordered_rules: tuple[str, ...]
    """Applicable rules in policy order."""


@dataclass(frozen=True)
class _Decided:
    """A decision before the namespace's current Secrets are looked at (memoisable)."""

    ops: tuple[JsonPatchOp, ...]
    warnings: tuple[str, ...]
    wanted: tuple[CopySpec, ...]
    injections: tuple[Injection, ...]
    images: tuple[ImageDecision, ...]
    deny: str | None
    reason: str


_KeyringEntry = tuple[Keyring, dict[str, tuple[str, ...]]]
"""A merged keyring and the keys each secret contributes to it."""


@dataclass(frozen=True)
class _Derived:
    """State derived from one policy and one version of the source secrets.

    Caches here are valid exactly as long as that pair: a new policy or any change to a
    source secret builds a new ``_Derived`` and the old caches are dropped whole.
    """

    policy: Policy
    view: ClusterView
    sources_version: int
    index: RuleIndex
    scopes: dict[tuple[str, tuple[tuple[str, str], ...]], _Scope] = field(default_factory=dict)
    keyrings: dict[tuple[Any, tuple[str, ...]], _KeyringEntry] = field(default_factory=dict)
    pods: dict[tuple[Any, ...], _Decided] = field(default_factory=dict)

    def scope(self, namespace: str, labels: Mapping[str, str]) -> _Scope:
        key = (namespace, tuple(sorted(labels.items())))
        cached = self.scopes.get(key)
        if cached is None:
            copies = desired_copies(self.policy, namespace, labels, self.view)
            rules = tuple(dict.fromkeys(r for spec in copies.values() for r in spec.rules))
            order = {rule.name: position for position, rule in enumerate(self.policy.rules)}
            ordered = tuple(sorted(rules, key=order.__getitem__))
            cached = _Scope(key, copies, frozenset(rules), ordered)
            if len(self.scopes) >= _MEMO_LIMIT:
                self.scopes.clear()
            self.scopes[key] = cached
        return cached

    def keyring(self, scope: _Scope, secrets: tuple[str, ...]) -> _KeyringEntry:
        """One keyring per set of injected secrets: the kubelet merges a pod's secrets."""
        key = (scope.key, secrets)
        cached = self.keyrings.get(key)
        if cached is None:
            keys = {s: _effective_keys(scope.copies[s], self.view) for s in secrets}
            cached = (Keyring(k for ks in keys.values() for k in ks), keys)
            if len(self.keyrings) >= _MEMO_LIMIT:
                self.keyrings.clear()
            self.keyrings[key] = cached
        return cached


_derived_lock = threading.Lock()
_last_derived: _Derived | None = None


def _derived(policy: Policy, view: ClusterView) -> _Derived:
    """One slot: a new policy or changed source secrets rebuild it, so nothing old lingers."""
    global _last_derived  # noqa: PLW0603 - a one-slot cache shared by request threads
    current = _last_derived
    version = view.sources_version
    if (
        current is not None
        and current.policy is policy
        and current.view is view
        and current.sources_version == version
    ):
        return current
    fresh = _Derived(policy, view, version, RuleIndex(policy, view))
    with _derived_lock:
        _last_derived = fresh
    return fresh


def _add_warning(warnings: list[str], message: str) -> None:
    text = WARNING_PREFIX + message
    if len(text) > MAX_WARNING_LENGTH:
        text = text[: MAX_WARNING_LENGTH - 1] + "…"
    if text not in warnings and len(warnings) < MAX_WARNINGS:
        warnings.append(text)


def _service_account(spec: Mapping[str, Any]) -> str:
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    return account if isinstance(account, str) and account else "default"


def _existing_names(value: object) -> list[str]:
    return [
        str(entry["name"])
        for entry in _list(value)
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    ]


def _append_ops(
    path: str, current: object, existing: Sequence[str], wanted: Sequence[str]
) -> tuple[JsonPatchOp, ...]:
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return ()
    if not isinstance(current, list):
        # absent or null: one add of the whole list (an add on an existing list would replace it)
        return (JsonPatchOp(op="add", path=path, value=[{"name": n} for n in missing]),)
    return tuple(JsonPatchOp(op="add", path=f"{path}/-", value={"name": n}) for n in missing)


def _deny_message(reasons: Sequence[str]) -> str | None:
    if not reasons:
        return None
    return WARNING_PREFIX + "; ".join(dict.fromkeys(reasons))


def _reason(added: Sequence[str], wanted: Sequence[str], images: Sequence[ImageDecision]) -> str:
    if added:
        return f"added {list(added)} for {len(images)} image(s)"
    if wanted:
        return f"no change: {list(wanted)} already present"
    if any(image.matches for image in images):
        return "no change: rules matched but none of their secrets is usable (see warnings)"
    return f"no change: no rule covers the {len(images)} image(s) here"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
