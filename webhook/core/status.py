"""``status``: what is true of the live cluster, namespace by namespace, and what the webhook
reports about its policy — decided purely.

Two halves meet here:

* the **status document** the leader controller publishes (``PolicyReport``, as JSON in the
  ConfigMap named by ``conventions.status_configmap_name``): the policy generation in force,
  whether the latest edit was valid (or its errors), the rule count and the state of every
  source Secret — never any secret data. It changes only when one of those does, so it is
  written on change, not on every reconcile pass;
* the **namespace assessment** (``assess``) the command line makes from what it read with
  the caller's credentials. It asks ``sync.reconcile`` — the controller's own decision —
  which copies are missing, stale (content hash differs from the desired copy's) or held by
  a Secret we do not own, and ``copies.desired_copies`` which copies a namespace should
  hold; nothing about copies is decided twice. ``reach`` says why a namespace is out of
  scope.

Rendering (a ``kubectl get``-like table, ``-o wide``, and the JSON/YAML document) lives here
too, so the text an operator sees is tested without a cluster.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from webhook.core.clusterview import SourceSecret, ViewStore
from webhook.core.copies import CopySpec, applicable_rules, desired_copies
from webhook.core.policy import Policy
from webhook.core.reach import (
    Miss,
    WebhookScope,
    exclusion_miss,
    rule_miss,
    webhook_exclusion,
)
from webhook.core.sync import (
    Conflict,
    CreateCopy,
    DeleteCopy,
    LinkServiceAccount,
    ServiceAccountState,
    UpdateCopy,
    reconcile,
)

__all__ = [
    "STATUS_API_VERSION",
    "STATUS_KIND",
    "ClusterStatus",
    "NamespaceReport",
    "PolicyReport",
    "SourceState",
    "SourceStateName",
    "StatusDocumentError",
    "UnlinkedAccount",
    "assess",
    "parse_status_document",
    "policy_report",
    "render_document",
    "render_table",
    "source_states",
    "status_document",
]

STATUS_API_VERSION = "pullsecret-injector.io/v1"
STATUS_KIND = "PullSecretInjectorStatus"

SourceStateName = Literal["present", "missing", "malformed", "forbidden", "unknown"]
_SOURCE_STATES: tuple[SourceStateName, ...] = (
    "present",
    "missing",
    "malformed",
    "forbidden",
    "unknown",
)
_MAX_ERROR = 2000
"""Characters of policy errors kept in the document (a ConfigMap stays small)."""


class StatusDocumentError(ValueError):
    """A status document that cannot be read; the message says why."""


# -- the status document -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source Secret the policy names, as its reader sees it."""

    namespace: str
    name: str
    state: SourceStateName
    reason: str = ""
    """Why it is malformed, forbidden or unknown; never secret data."""

    @property
    def source(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """What the webhook's controller reports about its policy (the status document)."""

    configmap: str
    """``namespace/name`` of the policy ConfigMap it follows."""
    key: str
    """Data key of the policy in that ConfigMap."""
    generation: str
    """Generation (ConfigMap resourceVersion) of the policy in force; empty: none in force."""
    valid: bool
    """A policy is in force and the latest edit was accepted."""
    error: str = ""
    """Why not: the latest edit's errors, or why no policy is in force."""
    rejected_generation: str = ""
    """The generation of the rejected edit, when one was rejected."""
    rules: int = 0
    sources: tuple[SourceState, ...] = ()
    reporter: str = ""
    """Identity of the controller that wrote it."""
    updated: str = ""
    """When it was written (RFC 3339); not part of what "changed" compares."""

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if not self.valid:
            found.append(f"policy: {self.error or 'not valid'}")
        found.extend(
            f"source {s.source}: {s.state}" + (f" ({s.reason})" if s.reason else "")
            for s in self.sources
            if s.state != "present"
        )
        return tuple(found)


def source_states(
    policy: Policy,
    view: ViewStore,
    unreadable: Mapping[tuple[str, str], tuple[SourceStateName, str]] | None = None,
) -> tuple[SourceState, ...]:
    """Each source Secret ``policy`` names: present, missing, malformed, or why it is unseen.

    ``unreadable`` holds the sources whose reader has not seen them (forbidden, or not listed
    yet) with the reason; without it, an absent source is missing.
    """
    unseen = unreadable or {}
    states: list[SourceState] = []
    for namespace, name in sorted(policy.source_refs()):
        source: SourceSecret | None = view.source_secret(namespace, name)
        if source is None and (namespace, name) in unseen:
            state, reason = unseen[(namespace, name)]
            states.append(SourceState(namespace, name, state, reason))
        elif source is None:
            states.append(SourceState(namespace, name, "missing"))
        elif source.config is None:
            states.append(SourceState(namespace, name, "malformed", source.problem or ""))
        else:
            states.append(SourceState(namespace, name, "present"))
    return tuple(states)


def policy_report(
    policy: Policy | None,
    *,
    configmap: str,
    key: str,
    error: str,
    rejected_generation: str,
    sources: Sequence[SourceState],
    reporter: str,
) -> PolicyReport:
    """The controller's report: ``error`` is the latest rejection, or why none is in force."""
    return PolicyReport(
        configmap=configmap,
        key=key,
        generation=policy.generation if policy is not None else "",
        valid=policy is not None and not error,
        error=error[:_MAX_ERROR],
        rejected_generation=rejected_generation,
        rules=len(policy.rules) if policy is not None else 0,
        sources=tuple(sources),
        reporter=reporter,
    )


def status_document(report: PolicyReport) -> dict[str, Any]:
    """The JSON document (a ConfigMap value): small, stable key order, no secret data."""
    return {
        "apiVersion": STATUS_API_VERSION,
        "kind": STATUS_KIND,
        "policy": {
            "configMap": report.configmap,
            "key": report.key,
            "generation": report.generation,
            "valid": report.valid,
            "error": report.error,
            "rejectedGeneration": report.rejected_generation,
            "rules": report.rules,
        },
        "sources": [
            {"namespace": s.namespace, "name": s.name, "state": s.state, "reason": s.reason}
            for s in report.sources
        ],
        "reporter": report.reporter,
        "updated": report.updated,
    }


def parse_status_document(text: str) -> PolicyReport:
    """Read a status document back (the command line); raises ``StatusDocumentError``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StatusDocumentError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != STATUS_KIND:
        raise StatusDocumentError(f"not a {STATUS_KIND} document")
    if document.get("apiVersion") != STATUS_API_VERSION:
        raise StatusDocumentError(
            f"apiVersion {document.get('apiVersion')!r} is not {STATUS_API_VERSION!r} "
            "(a newer controller? upgrade this command)"
        )
    policy = document.get("policy") or {}
    sources = []
    for item in document.get("sources") or []:
        state = item.get("state")
        if state not in _SOURCE_STATES:
            state = "unknown"
        sources.append(
            SourceState(
                str(item.get("namespace", "")),
                str(item.get("name", "")),
                state,
                str(item.get("reason") or ""),
            )
        )
    return PolicyReport(
        configmap=str(policy.get("configMap") or ""),
        key=str(policy.get("key") or ""),
        generation=str(policy.get("generation") or ""),
        valid=policy.get("valid") is True,
        error=str(policy.get("error") or ""),
        rejected_generation=str(policy.get("rejectedGeneration") or ""),
        rules=int(policy.get("rules") or 0),
        sources=tuple(sources),
        reporter=str(document.get("reporter") or ""),
        updated=str(document.get("updated") or ""),
    )


# -- the namespace assessment --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnlinkedAccount:
    """A ServiceAccount a rule names that lacks some of the rule's secrets."""

    name: str
    secrets: tuple[str, ...]
    backfilled: bool
    """A rule backfills it: the controller should have linked it (a problem). Otherwise the
    rule links ServiceAccounts at creation only, and this one predates the rule."""


@dataclass(frozen=True, slots=True)
class NamespaceReport:
    """What is true of one namespace, and what is wrong with it."""

    namespace: str
    out_of_scope: tuple[Miss, ...] = ()
    """Why it is out of scope: the webhook configuration's exclusion, or every rule's miss.
    Empty: in scope."""
    rules: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    """Copies it should hold (names)."""
    present: tuple[str, ...] = ()
    """Expected copies that exist (ours or not)."""
    missing: tuple[str, ...] = ()
    """Expected, absent, and the controller could create them."""
    unsourced: tuple[tuple[str, str], ...] = ()
    """(copy, why): copies whose source cannot provide them (missing, malformed, no grant)."""
    stale: tuple[str, ...] = ()
    """Ours, but the content-hash annotation differs from the desired copy's."""
    foreign: tuple[str, ...] = ()
    """A Secret we do not own holds the name."""
    leftover: tuple[str, ...] = ()
    """Our copies that no rule wants here any more."""
    accounts: tuple[UnlinkedAccount, ...] = ()

    @property
    def in_scope(self) -> bool:
        return not self.out_of_scope

    @property
    def problems(self) -> tuple[str, ...]:
        """What is wrong, one phrase each (empty: all good)."""
        found = []
        if self.missing:
            found.append(f"missing {', '.join(self.missing)}")
        found.extend(f"cannot copy {name}: {why}" for name, why in self.unsourced)
        if self.stale:
            found.append(f"stale {', '.join(self.stale)}")
        if self.foreign:
            found.append(f"not ours: {', '.join(self.foreign)}")
        if self.leftover:
            found.append(f"leftover {', '.join(self.leftover)} (no rule wants it)")
        owed = [a for a in self.accounts if a.backfilled]
        if owed:
            found.append(
                "serviceaccounts not linked: "
                + ", ".join(f"{a.name} ({', '.join(a.secrets)})" for a in owed)
            )
        return tuple(found)

    @property
    def remarks(self) -> tuple[str, ...]:
        """What is worth knowing but not wrong."""
        return tuple(
            f"serviceaccount {a.name} lacks {', '.join(a.secrets)} (its rule links at "
            "creation only; set serviceAccounts.backfill to link existing ones)"
            for a in self.accounts
            if not a.backfilled
        )

    @property
    def reason(self) -> str:
        """Why it is out of scope, in one line."""
        if not self.out_of_scope:
            return ""
        first = self.out_of_scope[0]
        if first.kind == "no-rules":
            return f"no rule reaches it: {first}"
        if not first.rule:
            return str(first)
        if len(self.out_of_scope) == 1:
            return f"no rule reaches it: {first}"
        return "no rule reaches it: " + "; ".join(
            f"{m.rule} {m.summary} ({m.detail})" for m in self.out_of_scope
        )


def assess(
    policy: Policy,
    view: ViewStore,
    accounts: Iterable[ServiceAccountState] = (),
    webhook: WebhookScope | None = None,
    namespaces: Collection[str] | None = None,
) -> tuple[NamespaceReport, ...]:
    """One report per namespace of ``view`` (or of ``namespaces``), sorted by name.

    In scope: the webhook configuration lets it through and at least one rule reaches it.
    """
    accounts = list(accounts)
    reports: dict[str, NamespaceReport] = {}
    in_scope: dict[str, Mapping[str, str]] = {}
    for namespace, labels in sorted(view.namespaces().items()):
        if namespaces is not None and namespace not in namespaces:
            continue
        excluded = webhook_exclusion(webhook, namespace, labels) if webhook else None
        excluded = excluded or exclusion_miss(policy.exclusions, namespace, labels)
        if excluded is not None:
            reports[namespace] = NamespaceReport(namespace, out_of_scope=(excluded,))
        elif not applicable_rules(policy, namespace, labels):
            misses = tuple(
                miss for rule in policy.rules if (miss := rule_miss(rule, namespace, labels))
            )
            reports[namespace] = NamespaceReport(
                namespace, out_of_scope=misses or (Miss("no-rules", ""),)
            )
        else:
            in_scope[namespace] = labels
    actions = _by_namespace(reconcile(policy, view, accounts, only_namespaces=in_scope))
    unlinked = _by_namespace(
        a
        for a in reconcile(_linking_everywhere(policy), view, accounts, only_namespaces=in_scope)
        if isinstance(a, LinkServiceAccount)
    )
    for namespace, labels in in_scope.items():
        reports[namespace] = _report(
            policy,
            view,
            namespace,
            labels,
            actions=actions[namespace],
            unlinked=unlinked[namespace],
        )
    return tuple(reports[name] for name in sorted(reports))


def _report(
    policy: Policy,
    view: ViewStore,
    namespace: str,
    labels: Mapping[str, str],
    *,
    actions: Sequence[object],
    unlinked: Sequence[object],
) -> NamespaceReport:
    copies = [
        spec
        for spec in desired_copies(policy, namespace, labels, view).values()
        if not spec.is_source_itself
    ]
    owed = {a.name: a.add for a in actions if isinstance(a, LinkServiceAccount)}
    accounts: list[UnlinkedAccount] = []
    for link in unlinked:
        if not isinstance(link, LinkServiceAccount):
            continue
        linked_by_controller = tuple(n for n in link.add if n in owed.get(link.name, ()))
        at_creation_only = tuple(n for n in link.add if n not in linked_by_controller)
        if linked_by_controller:
            accounts.append(UnlinkedAccount(link.name, linked_by_controller, backfilled=True))
        if at_creation_only:
            accounts.append(UnlinkedAccount(link.name, at_creation_only, backfilled=False))
    return NamespaceReport(
        namespace=namespace,
        rules=tuple(r.name for r in applicable_rules(policy, namespace, labels)),
        expected=tuple(spec.name for spec in copies),
        present=tuple(s.name for s in copies if view.target_secret(namespace, s.name) is not None),
        missing=tuple(a.spec.name for a in actions if isinstance(a, CreateCopy)),
        unsourced=tuple((s.name, why) for s in copies if (why := _unsourced(view, s))),
        stale=tuple(a.spec.name for a in actions if isinstance(a, UpdateCopy)),
        foreign=tuple(a.name for a in actions if isinstance(a, Conflict)),
        leftover=tuple(a.name for a in actions if isinstance(a, DeleteCopy)),
        accounts=tuple(accounts),
    )


def _unsourced(view: ViewStore, spec: CopySpec) -> str:
    """Why the source cannot provide this copy ("" when it can): ``reconcile`` skips these."""
    source = view.source_secret(spec.source_namespace, spec.source_name)
    if source is None:
        return f"source {spec.source} not found"
    if source.config is None:
        return f"source {spec.source} is not a usable pull secret"
    if spec.subset is not None and not spec.subset:
        return f"source {spec.source} has no auths entry for the granted registries"
    return ""


def _linking_everywhere(policy: Policy) -> Policy:
    """``policy`` with every ServiceAccount rule backfilling: ``reconcile`` then lists every
    ServiceAccount a rule names that lacks its secrets, not only those it would link."""
    return replace(
        policy,
        rules=tuple(
            replace(rule, service_accounts=replace(rule.service_accounts, backfill=True))
            if rule.service_accounts.names
            else rule
            for rule in policy.rules
        ),
    )


def _by_namespace(actions: Iterable[object]) -> defaultdict[str, list[object]]:
    grouped: defaultdict[str, list[object]] = defaultdict(list)
    for action in actions:
        if isinstance(action, CreateCopy | UpdateCopy):
            grouped[action.spec.namespace].append(action)
        elif isinstance(action, Conflict | DeleteCopy | LinkServiceAccount):
            grouped[action.namespace].append(action)
    return grouped


# -- the whole answer, and how it is shown -----------------------------------------------------


@dataclass(frozen=True)
class ClusterStatus:
    """Everything ``status`` prints: the policy as reported, and every namespace."""

    webhook_configuration: str
    policy_configmap: str
    """``namespace/name`` of the policy ConfigMap read."""
    policy_generation: str
    """Its current resourceVersion."""
    policy_error: str = ""
    """Why the ConfigMap's current content is not a valid policy ("" when it is)."""
    reported: PolicyReport | None = None
    """The controller's status document; ``None`` when none is published."""
    status_configmap: str = ""
    sources: tuple[SourceState, ...] = ()
    """Sources as this command read them (shown when nothing is reported)."""
    namespaces: tuple[NamespaceReport, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> tuple[str, ...]:
        """What is wrong above the namespaces."""
        found: list[str] = []
        if self.policy_error:
            found.append(f"policy ConfigMap {self.policy_configmap}: {self.policy_error}")
        if self.reported is not None:
            found.extend(p for p in self.reported.problems if p not in found)
        else:
            found.extend(
                f"source {s.source}: {s.state}" + (f" ({s.reason})" if s.reason else "")
                for s in self.sources
                if s.state != "present"
            )
        return tuple(found)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(n.problems for n in self.namespaces)


_HEADERS = ("NAMESPACE", "STATUS", "COPIES", "STALE", "FOREIGN", "SA-UNLINKED")
_WIDE = ("RULES", "MISSING", "STALE-NAMES", "FOREIGN-NAMES", "SERVICEACCOUNTS")


def render_table(status: ClusterStatus, wide: bool = False) -> str:
    """The header block, then one ``kubectl get``-like line per namespace."""
    lines = _header_lines(status)
    rows: list[tuple[str, ...]] = [(*_HEADERS, *(_WIDE if wide else ()), "REASON")]
    for report in status.namespaces:
        rows.append(_row(report, wide))
    if len(rows) == 1:
        lines.append("No namespaces found.")
    else:
        lines.extend(_align(rows))
    return "\n".join(lines) + "\n"


def _header_lines(status: ClusterStatus) -> list[str]:
    reported = status.reported
    lines = [f"Webhook:     {status.webhook_configuration}"]
    lines.append(f"Policy:      {status.policy_configmap} (generation {status.policy_generation})")
    if status.policy_error:
        lines.append(f"             not a valid policy: {status.policy_error}")
    if reported is None:
        lines.append(
            f"Controller:  no status published ({status.status_configmap} not found: is the "
            "controller running?); sources as read now:"
        )
        sources = status.sources
    else:
        if reported.generation:
            state = "valid" if reported.valid else f"latest edit rejected: {reported.error}"
            if reported.rejected_generation:
                state += f" (generation {reported.rejected_generation})"
            in_force = f"generation {reported.generation}, {reported.rules} rule(s), {state}"
        else:
            in_force = f"no policy in force: {reported.error}"
        lines.append(f"In force:    {in_force}")
        lines.append(
            f"Reported:    by {reported.reporter or 'the controller'}"
            + (f" at {reported.updated}" if reported.updated else "")
        )
        sources = reported.sources
    if sources:
        lines.append("Sources:")
        width = max(len(s.source) for s in sources)
        for source in sources:
            reason = f": {source.reason}" if source.reason else ""
            lines.append(f"  {source.source.ljust(width)}   {source.state}{reason}")
    lines.extend(f"Note:        {note}" for note in status.notes)
    lines.append("")
    return lines


def _row(report: NamespaceReport, wide: bool) -> tuple[str, ...]:
    """The columns, then (``-o wide``) the names behind the counts, then the reason."""
    if not report.in_scope:
        blank = ("-",) * (len(_HEADERS) - 2 + (len(_WIDE) if wide else 0))
        return (report.namespace, "OutOfScope", *blank, report.reason)
    problems = report.problems
    row: tuple[str, ...] = (
        report.namespace,
        "Degraded" if problems else "OK",
        f"{len(report.present)}/{len(report.expected)}",
        str(len(report.stale)),
        str(len(report.foreign)),
        str(len({a.name for a in report.accounts if a.backfilled})),
    )
    if wide:
        row += (
            ",".join(report.rules) or "-",
            ",".join(report.missing + tuple(n for n, _ in report.unsourced)) or "-",
            ",".join(report.stale) or "-",
            ",".join(report.foreign) or "-",
            ",".join(f"{a.name}({'+'.join(a.secrets)})" for a in report.accounts) or "-",
        )
    return (*row, "; ".join(problems + report.remarks))


def _align(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded like kubectl's tabwriter (three spaces); the last one is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]


def render_document(status: ClusterStatus) -> dict[str, Any]:
    """``-o json`` / ``-o yaml``: every fact of the table, structured."""
    return {
        "webhookConfiguration": status.webhook_configuration,
        "policy": {
            "configMap": status.policy_configmap,
            "generation": status.policy_generation,
            "error": status.policy_error,
        },
        "reported": None if status.reported is None else status_document(status.reported),
        "sources": [
            {"namespace": s.namespace, "name": s.name, "state": s.state, "reason": s.reason}
            for s in (status.reported.sources if status.reported else status.sources)
        ],
        "problems": list(status.problems),
        "notes": list(status.notes),
        "ok": status.ok,
        "namespaces": [_namespace_document(report) for report in status.namespaces],
    }


def _namespace_document(report: NamespaceReport) -> dict[str, Any]:
    document: dict[str, Any] = {"name": report.namespace, "inScope": report.in_scope}
    if not report.in_scope:
        document["outOfScope"] = [
            {"rule": m.rule or None, "reason": m.kind, "detail": m.detail}
            for m in report.out_of_scope
        ]
        document["reason"] = report.reason
        return document
    document.update(
        {
            "ok": not report.problems,
            "rules": list(report.rules),
            "copies": {
                "expected": list(report.expected),
                "present": list(report.present),
                "missing": list(report.missing),
                "stale": list(report.stale),
                "foreign": list(report.foreign),
                "leftover": list(report.leftover),
                "unsourced": [{"name": n, "reason": why} for n, why in report.unsourced],
            },
            "serviceAccounts": [
                {"name": a.name, "lacks": list(a.secrets), "backfilled": a.backfilled}
                for a in report.accounts
            ],
            "problems": list(report.problems),
            "remarks": list(report.remarks),
        }
    )
    return document
