"""The decision: (policy, admitted object, cluster view) -> JSONPatch, warnings, copies.

Pure: no HTTP, no API client, no clock. The HTTP shell decodes the AdmissionReview into an
``AdmissionRequest`` and asks the backend's ``Planner`` for a ``Plan``; the Kubernetes shell
creates the copies listed in ``Plan.copies``. ``explain`` runs the very same code.

Guarantees a reader can check here:

* existing ``imagePullSecrets`` are never removed or reordered (the ServiceAccount admission
  plugin and OpenShift put entries there before us); missing names are appended with one
  ``add .../-`` each, or one ``add`` of the whole list when the field is absent or null;
* nothing changes means no ops, and applying the ops then planning again gives no ops;
* a secret that is missing, of the wrong type or malformed is never injected (a malformed
  pull secret fails *every* pull of the pod): the pod is admitted with a warning, unless the
  rule says ``onFailure: Deny``;
* source namespace and secret names come only from the policy, never from the object.

Reading order: the result types; ``Planner`` (one policy against one state of the source
secrets, owning every cache that pair allows) and its three decisions, pod, ephemeral
containers and ServiceAccount, each a function of an explicit input; then the steps they
share. A pod's decision is memoised under its ``PodInput``, the very value it is computed
from, so the memo cannot answer for an input it did not see. What the namespace holds is never
memoised: every review looks its copies up again (``ClusterView.target_secrets``), and the memo
keeps ready plans only for the two answers that look-up almost always gives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypeVar

from webhook.core.clusterview import ClusterView, TargetSecret
from webhook.core.conventions import NAMESPACE_NAME_LABEL
from webhook.core.copies import CopySpec, desired_copies
from webhook.core.images import InvalidImageReference, parse_image
from webhook.core.internal_registry import ungranted_pull
from webhook.core.matcher import RuleIndex, RuleMatch
from webhook.core.memo import Memo
from webhook.core.messages import MAX_WARNING_LENGTH, add_warning, denial, shorten
from webhook.core.policy import Policy, Rule, SecretRef
from webhook.core.registry import Keyring, glob_match, normalize_key
from webhook.core.review import AdmissionRequest, JsonPatchOp

__all__ = [
    "MAX_WARNING_LENGTH",
    "ContainerEntry",
    "ContainerField",
    "ContainerInput",
    "Findings",
    "ImageDecision",
    "Injection",
    "NoImage",
    "Plan",
    "Planner",
    "PlannerSlot",
    "PodInput",
    "Scope",
    "drop_names",
    "plan",
    "pod_input",
]

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


# -- results ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Findings:
    """A decision before the namespace's current Secrets are looked at (memoisable)."""

    ops: tuple[JsonPatchOp, ...]
    warnings: tuple[str, ...]
    wanted: tuple[CopySpec, ...]
    """Copies the injected names need in the namespace (checked against targets at the end)."""
    injections: tuple[Injection, ...]
    images: tuple[ImageDecision, ...]
    deny: str | None
    reason: str


class _SettledPod(NamedTuple):
    """A pod's memoised decision, with its plans for the two states a namespace's copies are
    almost always in (all present and ours; none there yet) built once: a warm review then
    costs one look-up of its copies instead of assembling a ``Plan``."""

    scope: Scope
    findings: Findings
    names: tuple[str, ...]
    """``findings.wanted``'s names, in order."""
    all_ours: Plan
    none_present: Plan


_OURS = TargetSecret(namespace="", name="", managed=True)
"""Stands for "a copy of ours holds the name" when a settled plan is built."""

_is_managed = attrgetter("managed")


# -- inputs -----------------------------------------------------------------------------------

ScopeKey = tuple[str, tuple[tuple[str, str], ...] | None]
"""(namespace, sorted labels or ``None`` when unknown): what the policy means there."""


class ContainerInput(NamedTuple):
    """One container as the decision sees it (built from a ``PodInput`` on a memo miss)."""

    field: str
    """``containers``, ``initContainers`` or ``ephemeralContainers``."""
    position: int
    name: str
    image: str | None
    """The image, or ``None`` when the container has no usable image string."""
    shown: str
    """What was written instead of a usable image, for messages (``""`` when ``image`` is set)."""

    @property
    def where(self) -> str:
        return f"spec.{self.field}[{self.position}]"


class NoImage(NamedTuple):
    """A container's image that is not a usable string: what was written, for messages."""

    shown: str


ContainerEntry = tuple[str, str | NoImage]
"""(name, image) of one container, in the order its field lists them."""

ContainerField = tuple[str, tuple[ContainerEntry, ...]]
"""A container field (``containers`` etc.) and its entries; an entry's index is its position."""


class PodInput(NamedTuple):
    """Everything a pod's decision reads; equal inputs give equal ``Findings``.

    Plain tuples of the pod's own strings, not one object per container: every review builds
    one and the memo hashes and compares it, all of which happens in C for tuples.
    """

    scope: ScopeKey
    containers: tuple[ContainerField, ...]
    """The fields that list containers, in the order read (absent, empty or odd: left out)."""
    pull_secrets: tuple[str, ...]
    """Names already in ``spec.imagePullSecrets``."""
    pull_secrets_listed: bool
    """``spec.imagePullSecrets`` is a list (append to it) rather than absent or null."""
    service_account: str

    def container_inputs(self) -> list[ContainerInput]:
        return [
            ContainerInput(field_name, position, name, image, "")
            if isinstance(image, str)
            else ContainerInput(field_name, position, name, None, image.shown)
            for field_name, entries in self.containers
            for position, (name, image) in enumerate(entries)
        ]


_new_tuple = tuple.__new__


def pod_input(scope: ScopeKey, pod: Mapping[str, Any], fields: Sequence[str]) -> PodInput:
    """Read a pod object (any shape: odd fields read as empty) into a ``PodInput``."""
    spec = _mapping(pod.get("spec"))
    containers: list[ContainerField] = []
    for field_name in fields:
        value = spec.get(field_name)
        if value is not None:
            entries = _container_entries(value)
            if entries:
                containers.append((field_name, entries))
    listed = spec.get("imagePullSecrets")
    pull_secrets = () if listed is None else tuple(_existing_names(listed))
    # tuple.__new__ is PodInput(...) without the Python-level __new__ (every review builds one)
    return _new_tuple(
        PodInput,
        (scope, tuple(containers), pull_secrets, type(listed) is list, _service_account(spec)),
    )


_name_and_image = itemgetter("name", "image")


def _container_entries(value: object) -> tuple[ContainerEntry, ...]:
    containers = _list(value)
    try:
        # Every real pod: each container a mapping with a name and an image string, read by
        # one C call per container. Anything else (a key missing, a container that is not a
        # mapping) raises, and the field is read one container at a time.
        entries: tuple[ContainerEntry, ...] = tuple(map(_name_and_image, containers))
    except (KeyError, TypeError):
        return tuple(map(_container_entry, containers))
    for name, image in entries:
        if type(name) is not str or type(image) is not str or not image:
            return tuple(map(_container_entry, containers))
    return entries


def _container_entry(raw: object) -> ContainerEntry:
    container = _mapping(raw)
    image = container.get("image")
    name = container.get("name", "")
    name = name if type(name) is str else str(name)
    if type(image) is str and image:
        return (name, image)
    return (name, NoImage(shorten(str(image or ""), 200)))


# -- the planner ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What the policy means in one namespace (for its current labels)."""

    key: ScopeKey
    labels: Mapping[str, str]
    """The namespace's labels (empty when not known)."""
    labels_known: bool
    """False when the view did not hold the namespace: label selectors could not be applied."""
    copies: Mapping[str, CopySpec]
    """Every copy the namespace should hold; each applicable rule wants at least one."""
    applicable: frozenset[str]
    ordered_rules: tuple[str, ...]
    """Applicable rules in policy order."""

    @property
    def namespace(self) -> str:
        return self.key[0]


class Planner:
    """Decisions for one policy against one state of the source secrets.

    Every cache lives here and is valid exactly as long as that pair: the backend builds a new
    ``Planner`` for a new policy or any change to a source secret (``PlannerSlot``) and the old
    caches are dropped whole. Target secrets and namespace labels may change under a planner:
    targets are read fresh for every plan, and labels are part of every cache key.
    """

    def __init__(self, policy: Policy, view: ClusterView) -> None:
        self.policy = policy
        self.view = view
        self.sources_version = view.sources_version
        self.index = RuleIndex(policy, view)
        self._order = {rule.name: position for position, rule in enumerate(policy.rules)}
        self._rules = {rule.name: rule for rule in policy.rules}
        self._scopes: Memo[ScopeKey, Scope] = _memo(
            lambda key, scope: _weigh_scope(key) + _COPY_BYTES * len(scope.copies)
        )
        self._rule_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._rule_sets: dict[tuple[str, ...], frozenset[str]] = {}
        """One instance of each tuple of rule names (a scope's, a copy's) and of each scope's
        applicable set: namespaces a policy treats alike (most, in a cluster) share them
        instead of holding a copy each (with 1,000 rules reaching every namespace that was
        ~40 KiB per memoised namespace)."""
        self._keyrings: Memo[tuple[ScopeKey, tuple[str, ...]], _KeyringEntry] = _memo(
            lambda key, entry: _weigh_scope(key[0]) + 64 * sum(map(len, entry[1].values()))
        )
        self._pods: Memo[PodInput, _SettledPod] = _memo(
            lambda key, settled: 3 * _weigh_pod(key) + 512 * len(settled.findings.images)
        )

    def serves(self, policy: Policy, view: ClusterView) -> bool:
        """Still valid for this policy and the view's current source secrets?"""
        return (
            policy is self.policy
            and view is self.view
            and view.sources_version == self.sources_version
        )

    def plan(self, request: AdmissionRequest) -> Plan:
        """Decide what ``request``'s object needs. Never raises on odd objects: it warns."""
        obj = _mapping(request.object)
        metadata = _mapping(obj.get("metadata"))
        namespace = request.namespace or str(metadata.get("namespace") or "")
        if not namespace:
            return Plan(namespace="", reason="skipped: no namespace in request or object")
        labels = self.view.namespace_labels(namespace)
        excluded = self.policy.exclusions.namespace(namespace, labels)
        if excluded is None and request.kind in ("Pod", "ServiceAccount"):
            excluded = self.policy.exclusions.object(request.kind, metadata)
        if excluded is not None:
            return Plan(
                namespace=namespace,
                namespace_known=labels is not None,
                reason=f"skipped: {excluded}",
            )
        scope = self.scope(namespace, labels)
        if request.kind == "Pod" and request.sub_resource == "ephemeralcontainers":
            findings, existing = self._ephemeral(scope, obj, request.old_object)
            return self._finish(scope, findings, ensure_only=existing)
        if request.kind == "Pod" and request.sub_resource == "" and request.operation == "CREATE":
            pod = pod_input(scope.key, obj, CONTAINER_FIELDS)
            return self._current(self._pods.get(pod, lambda key: self._settled_pod(scope, key)))
        if request.kind == "ServiceAccount" and request.operation in ("CREATE", "UPDATE"):
            # UPDATE too: GitOps tools and operators (Argo CD, Flux, OLM) rewrite the list
            # without our entry; it is put back in the same request, so the stored account
            # never lacks it and a server-side diff of their manifest shows no drift.
            return self._finish(scope, self._service_account(scope, obj))
        return Plan(
            namespace=namespace,
            reason=f"skipped: {request.kind} {request.operation} {request.sub_resource}".strip(),
        )

    def scope(self, namespace: str, labels: Mapping[str, str] | None) -> Scope:
        """What the policy means in ``namespace`` (``labels`` ``None``: not known)."""
        items = None if labels is None else tuple(sorted(labels.items()))
        return self._scopes.get((namespace, items), self._new_scope)

    # -- the three decisions --------------------------------------------------------------------

    def _pod(self, scope: Scope, pod: PodInput) -> Findings:
        notes = _Notes()
        images = self._decide_images(scope, pod.container_inputs(), pod.service_account, notes)
        wanted = list(dict.fromkeys(name for image in images for name in image.secrets))
        ops = _append_ops(
            "/spec/imagePullSecrets", pod.pull_secrets_listed, pod.pull_secrets, wanted
        )
        added = [name for name in wanted if name not in pod.pull_secrets]
        unneeded = [n for n in pod.pull_secrets if n in scope.copies and n not in wanted]
        linked = self._linked_to(scope, pod.service_account) if unneeded else set()
        for name in unneeded:
            if name not in linked:
                # Typically ours from an earlier call: a later webhook (a registry proxy
                # rewriting docker.io/...) changed the image it was chosen for. Never removed
                # (it may be someone else's choice too), but no longer what the pull needs.
                notes.warn(
                    f"{name} is a pull secret the policy manages, but no image of this pod needs "
                    "it now (a later webhook may have rewritten the image it was added for)"
                )
        return notes.findings(ops, added, _reason(added, wanted, images), images)

    def _ephemeral(
        self, scope: Scope, obj: Mapping[str, Any], old_obj: Mapping[str, Any] | None
    ) -> tuple[Findings, list[str]]:
        """Pull secrets of a running pod cannot change: say what is missing, and how to fix it."""
        pod = pod_input(scope.key, obj, ("ephemeralContainers",))
        old = pod_input(scope.key, _mapping(old_obj), ("ephemeralContainers",))
        old_names = {c.name for c in old.container_inputs()}
        new = [c for c in pod.container_inputs() if c.name not in old_names]
        notes = _Notes()
        images = self._decide_images(scope, new, pod.service_account, notes)
        for image in images:
            missing = [s for s in image.secrets if s not in pod.pull_secrets]
            if missing:
                notes.warn(
                    f"ephemeral container {image.container} ({shorten(image.image)}) needs "
                    f"{', '.join(missing)}, which this running pod lacks and cannot gain; "
                    "recreate the pod to pull it"
                )
        reason = f"ephemeral containers {sorted({c.name for c in new})}: warnings only"
        return notes.findings((), (), reason, images), list(pod.pull_secrets)

    def _service_account(self, scope: Scope, account: Mapping[str, Any]) -> Findings:
        """Like ``secrets link <sa> <secret> --for=pull``, at creation and on every update:
        missing names are appended, nothing else is touched, and an account that already
        has them gets no patch (no write loop with a controller that rewrites the list)."""
        notes = _Notes()
        name = str(_mapping(account.get("metadata")).get("name") or "")
        if not name:
            return notes.findings((), (), "serviceaccount without a name: skipped")
        wanted: list[str] = []
        for rule_name in scope.ordered_rules:
            rule = self._rules[rule_name]
            if any(glob_match(pattern, name) for pattern in rule.service_accounts.names):
                for ref in rule.secrets:
                    if self._usable(scope, rule, ref, notes):
                        wanted.append(ref.target_name)
                        notes.injections.append(
                            Injection(rule.name, ref.target_name, "serviceaccount")
                        )
        wanted = list(dict.fromkeys(wanted))
        listed = account.get("imagePullSecrets")
        existing = _existing_names(listed)
        ops = _append_ops("/imagePullSecrets", isinstance(listed, list), existing, wanted)
        added = [n for n in wanted if n not in existing]
        reason = f"serviceaccount {name}: " + (f"added {added}" if added else "no change")
        return notes.findings(ops, added, reason)

    # -- steps they share -----------------------------------------------------------------------

    def _linked_to(self, scope: Scope, account: str) -> set[str]:
        """Names the policy gives ``account`` (the ServiceAccount admission plugin copies an
        account's pull secrets into its pods, whatever their images)."""
        linked: set[str] = set()
        for rule_name in scope.ordered_rules:
            rule = self._rules[rule_name]
            if any(glob_match(pattern, account) for pattern in rule.service_accounts.names):
                linked.update(ref.target_name for ref in rule.secrets)
        return linked

    def _decide_images(
        self,
        scope: Scope,
        containers: Sequence[ContainerInput],
        account: str,
        notes: _Notes,
    ) -> list[ImageDecision]:
        decisions = [self._decide_image(scope, c, account, notes) for c in containers]
        return self._cross_check(scope, decisions, notes)

    def _decide_image(
        self, scope: Scope, container: ContainerInput, account: str, notes: _Notes
    ) -> ImageDecision:
        where, name = container.where, container.name
        if container.image is None:
            return ImageDecision(where, name, container.shown, None, error="no image")
        try:
            ref = parse_image(container.image)
        except InvalidImageReference as exc:
            notes.warn(f"{where} ({name}): {shorten(str(exc), 160)}; no pull secret injected")
            return ImageDecision(where, name, container.image, None, error=str(exc))
        refused = ungranted_pull(self.policy, ref, scope.namespace, scope.labels, account)
        if refused is not None:
            notes.warn(f"{where} ({name}): {refused}")
        matches = tuple(
            m for m in self.index.match(ref.repository) if m.rule.name in scope.applicable
        )
        secrets: list[str] = []
        for rule_match in matches:
            for secret in rule_match.rule.secrets:
                if self._usable(scope, rule_match.rule, secret, notes):
                    secrets.append(secret.target_name)
                    notes.injections.append(
                        Injection(rule_match.rule.name, secret.target_name, rule_match.patterns[0])
                    )
        return ImageDecision(
            where,
            name,
            container.image,
            ref.repository,
            matches=matches,
            secrets=tuple(dict.fromkeys(secrets)),
        )

    def _usable(self, scope: Scope, rule: Rule, ref: SecretRef, notes: _Notes) -> bool:
        """Can ``ref`` be injected? Records the copy to ensure, or the warning/denial."""
        source = self.view.source_secret(ref.namespace, ref.name)
        problem = None
        if source is None:
            denied = self.view.source_denied(ref.namespace, ref.name)
            # Not "not found": the secret may well exist; we are not allowed to look.
            problem = denied or f"source secret {ref.source} not found"
        elif source.config is None:
            problem = f"source secret {ref.source} is not a usable pull secret ({source.problem})"
        if problem is not None:
            notes.warn(f"rule {rule.name}: {problem}; not injecting {ref.target_name}")
            if rule.on_failure == "Deny":
                notes.deny.append(f"rule {rule.name} requires {ref.target_name}: {problem}")
            return False
        spec = scope.copies[ref.target_name]
        if spec.subset is not None and not spec.subset:
            notes.warn(
                f"rule {rule.name}: {ref.source} has no auths entry for the granted registries; "
                f"not injecting {ref.target_name}"
            )
            return False
        if not spec.is_source_itself:
            notes.wanted[spec.name] = spec
        return True

    def _cross_check(
        self, scope: Scope, decisions: list[ImageDecision], notes: _Notes
    ) -> list[ImageDecision]:
        """Warn when injected secrets hold no key the kubelet would use for an image.

        All of a pod's pull secrets share one keyring, so keys are looked up together (a key
        in one secret can block another's Docker Hub fallback, exactly as on the node).
        """
        secrets = tuple(dict.fromkeys(s for decision in decisions for s in decision.secrets))
        keyring, keys_by_secret = self._keyring(scope, secrets)
        checked: list[ImageDecision] = []
        for decision in decisions:
            if decision.repository is None or not decision.secrets:
                checked.append(decision)
                continue
            used = tuple(dict.fromkeys(keyring.lookup(decision.repository)))
            checked.append(replace(decision, kubelet_keys=used))
            crossing = [k for k in used if _crosses_path_segment(k, decision.repository)]
            if crossing:
                notes.warn(
                    f"{shorten(decision.repository)}: auths key {crossing[0]} applies too (the "
                    "kubelet matches paths as string prefixes); the kubelet tries "
                    f"{', '.join(used)} in this order, the next only if the registry refuses one"
                )
            for rule_match in decision.matches:
                rule_secrets = [s.target_name for s in rule_match.rule.secrets]
                rule_keys = {k for s in rule_secrets for k in keys_by_secret.get(s, ())}
                if rule_keys and not rule_keys.intersection(used):
                    notes.warn(
                        f"rule {rule_match.rule.name}: {', '.join(rule_secrets)} "
                        f"{'holds' if len(rule_secrets) == 1 else 'hold'} no auths "
                        f"key the kubelet uses for {shorten(decision.repository)}; "
                        "the pull may fail or go anonymous"
                    )
        return checked

    def _settled_pod(self, scope: Scope, pod: PodInput) -> _SettledPod:
        """A pod's findings with the plans of the two states its copies are usually in."""
        findings = self._pod(scope, pod)
        names = tuple(spec.name for spec in findings.wanted)
        return _SettledPod(
            scope,
            findings,
            names,
            self._settle(scope, findings, (_OURS,) * len(names)),
            self._settle(scope, findings, (None,) * len(names)),
        )

    def _current(self, pod: _SettledPod) -> Plan:
        """A memoised pod's plan for the copies its namespace holds now."""
        found = self.view.target_secrets(pod.scope.namespace, pod.names)
        if None not in found:
            if all(map(_is_managed, found)):
                return pod.all_ours
        elif found.count(None) == len(found):
            return pod.none_present
        return self._settle(pod.scope, pod.findings, found)

    def _finish(
        self, scope: Scope, findings: Findings, ensure_only: Sequence[str] | None = None
    ) -> Plan:
        found = self.view.target_secrets(scope.namespace, [spec.name for spec in findings.wanted])
        return self._settle(scope, findings, found, ensure_only)

    def _settle(
        self,
        scope: Scope,
        findings: Findings,
        found: Sequence[TargetSecret | None],
        ensure_only: Sequence[str] | None = None,
    ) -> Plan:
        """The plan, given what holds each wanted copy's name in the namespace right now
        (``found``, in ``findings.wanted``'s order)."""
        namespace, known = scope.namespace, scope.labels_known
        warnings = list(findings.warnings)
        missing = [
            spec for spec, target in zip(findings.wanted, found, strict=True) if target is None
        ]
        if not known:
            unknown = self._unknown_namespace_warning(namespace, missing)
            if unknown:
                add_warning(warnings, unknown)
        for spec, target in zip(findings.wanted, found, strict=True):
            if target is not None and not target.managed:
                add_warning(
                    warnings,
                    f"Secret {spec.name} in {namespace} is not managed by "
                    "pullsecret-injector; injected by name, its content is left untouched",
                )
        ensure = [
            spec for spec in missing if known and (ensure_only is None or spec.name in ensure_only)
        ]  # missing: create them before the pod pulls
        return Plan(
            namespace=namespace,
            ops=findings.ops,
            warnings=tuple(warnings),
            copies=tuple(ensure),
            injections=findings.injections,
            images=findings.images,
            deny=findings.deny,
            namespace_known=known,
            reason=findings.reason,
        )

    def _unknown_namespace_warning(self, namespace: str, missing: Sequence[CopySpec]) -> str | None:
        """What a namespace we could not look up cost this decision, if anything."""
        missed = []
        if any(not r.namespaces.reads_only(NAMESPACE_NAME_LABEL) for r in self.policy.rules):
            missed.append("rules that select namespaces by label were not applied")
        if missing:
            missed.append(
                f"{', '.join(spec.name for spec in missing)} not created now (the controller "
                "creates it once it sees the namespace; the pull fails until then)"
            )
        if not missed:
            return None
        return f"namespace {namespace} could not be looked up: " + "; ".join(missed)

    # -- cached derivations ---------------------------------------------------------------------

    def _new_scope(self, key: ScopeKey) -> Scope:
        labels = None if key[1] is None else dict(key[1])
        copies = desired_copies(self.policy, key[0], labels, self.view)
        rules = dict.fromkeys(r for spec in copies.values() for r in spec.rules)
        ordered = self._shared(tuple(sorted(rules, key=self._order.__getitem__)))
        applicable = self._rule_sets.get(ordered)
        if applicable is None:
            applicable = self._rule_sets[ordered] = frozenset(ordered)
        copies = {name: self._with_shared_rules(spec) for name, spec in copies.items()}
        return Scope(key, labels or {}, labels is not None, copies, applicable, ordered)

    def _shared(self, rules: tuple[str, ...]) -> tuple[str, ...]:
        if len(self._rule_tuples) >= MEMO_ENTRIES:  # bounded like the memo they serve
            self._rule_tuples.clear()
            self._rule_sets.clear()
        return self._rule_tuples.setdefault(rules, rules)

    def _with_shared_rules(self, spec: CopySpec) -> CopySpec:
        rules = self._shared(spec.rules)
        return spec if rules is spec.rules else replace(spec, rules=rules)

    def _keyring(self, scope: Scope, secrets: tuple[str, ...]) -> _KeyringEntry:
        """One keyring per set of injected secrets: the kubelet merges a pod's secrets."""

        def build(key: tuple[ScopeKey, tuple[str, ...]]) -> _KeyringEntry:
            keys = {s: _effective_keys(scope.copies[s], self.view) for s in key[1]}
            return Keyring(k for ks in keys.values() for k in ks), keys

        return self._keyrings.get((scope.key, secrets), build)


def _crosses_path_segment(key: str, repository: str) -> bool:
    """Does auths ``key`` (normalised) cover ``repository`` only as a string prefix, ending
    inside a path segment (``host/team`` for ``host/teamx/app``)? Nobody writes that on
    purpose, and the kubelet still sends the key's credentials, first."""
    _, slash, key_path = (normalize_key(key) or "").partition("/")
    repository_path = repository.partition("/")[2]
    return bool(slash and key_path) and not (
        repository_path == key_path or repository_path.startswith(key_path.rstrip("/") + "/")
    )


class PlannerSlot:
    """The current ``Planner`` for whatever policy and view a backend holds.

    A request that finds the slot stale builds the next planner; two requests racing to do so
    build two, and the last one stays (both are correct: they are built from the same inputs).
    """

    def __init__(self) -> None:
        self._planner: Planner | None = None

    def get(self, policy: Policy, view: ClusterView) -> Planner:
        current = self._planner
        if current is not None and current.serves(policy, view):
            return current
        fresh = Planner(policy, view)
        self._planner = fresh
        return fresh


def plan(policy: Policy, request: AdmissionRequest, view: ClusterView) -> Plan:
    """One decision with a fresh planner (tests, ``explain``); servers keep a ``PlannerSlot``."""
    return Planner(policy, view).plan(request)


# -- helpers ----------------------------------------------------------------------------------

_KeyringEntry = tuple[Keyring, dict[str, tuple[str, ...]]]
"""A merged keyring and the keys each secret contributes to it."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MEMO_ENTRIES = 8192
MEMO_BYTES = 16 * 1024 * 1024
"""Per memo: an estimate of the bytes its keys and values hold."""
_COPY_BYTES = 360
"""One ``CopySpec`` in a memoised scope: the object, its dict entry and its strings (measured
with tracemalloc: 80 + 119 bytes of objects plus the dict's share and the copy's name)."""


def _memo(weigh: Callable[[K, V], int]) -> Memo[K, V]:
    return Memo(weigh, entries=MEMO_ENTRIES, max_bytes=MEMO_BYTES)


def _weigh_scope(key: ScopeKey) -> int:
    return len(key[0]) + sum(len(k) + len(v) for k, v in key[1] or ())


def _weigh_pod(pod: PodInput) -> int:
    containers = sum(
        len(name) + len(image if isinstance(image, str) else image.shown) + 64
        for _, entries in pod.containers
        for name, image in entries
    )
    secrets = sum(map(len, pod.pull_secrets))
    return _weigh_scope(pod.scope) + containers + secrets + len(pod.service_account)


@dataclass
class _Notes:
    """What one decision has noticed so far (local to that decision)."""

    warnings: list[str] = field(default_factory=list)
    wanted: dict[str, CopySpec] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        add_warning(self.warnings, message)

    def findings(
        self,
        ops: tuple[JsonPatchOp, ...],
        added: Sequence[str],
        reason: str,
        images: Sequence[ImageDecision] = (),
    ) -> Findings:
        return Findings(
            ops=ops,
            warnings=tuple(self.warnings),
            wanted=tuple(self.wanted.values()),
            injections=tuple(i for i in self.injections if i.secret in added),
            images=tuple(images),
            deny=denial(self.deny),
            reason=reason,
        )


def _effective_keys(spec: CopySpec, view: ClusterView) -> tuple[str, ...]:
    """The ``auths`` keys the copy will carry (re-keyed ones for a credential subset)."""
    source = view.source_secret(spec.source_namespace, spec.source_name)
    if source is None or source.config is None:
        return ()
    if spec.subset is None:
        return source.config.keys
    return tuple(dict.fromkeys(new for _, new in spec.subset))


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
    path: str, listed: bool, existing: Sequence[str], wanted: Sequence[str]
) -> tuple[JsonPatchOp, ...]:
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return ()
    if not listed:
        # absent or null: one add of the whole list (an add on an existing list would replace it)
        return (JsonPatchOp(op="add", path=path, value=[{"name": n} for n in missing]),)
    return tuple(JsonPatchOp(op="add", path=f"{path}/-", value={"name": n}) for n in missing)


def drop_names(ops: Sequence[JsonPatchOp], names: frozenset[str]) -> tuple[JsonPatchOp, ...]:
    """``ops`` without the entries that add ``names`` (copies the API server refused)."""
    kept: list[JsonPatchOp] = []
    for op in ops:
        value = op["value"]
        if isinstance(value, list):
            remaining = [entry for entry in value if entry.get("name") not in names]
            if remaining:
                kept.append(JsonPatchOp(op="add", path=op["path"], value=remaining))
        elif not (isinstance(value, Mapping) and value.get("name") in names):
            kept.append(op)
    return tuple(kept)


def _reason(added: Sequence[str], wanted: Sequence[str], images: Sequence[ImageDecision]) -> str:
    if added:
        return f"added {list(added)} for {len(images)} image(s)"
    if wanted:
        return f"no change: {list(wanted)} already present"
    if any(image.matches for image in images):
        return "no change: rules matched but none of their secrets is usable (see warnings)"
    return f"no change: no rule covers the {len(images)} image(s) here"


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON decodes to: skip the ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
