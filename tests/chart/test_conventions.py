"""The chart spells every key we own the way ``webhook/core/conventions.py`` does.

Ownership is decided by these strings: if the admission policy checked a label the controller
does not write, every copy would be refused; if it checked one the controller writes but does
not *read*, the guard would let through Secrets the code disowns. So each key in the chart is
found (in the templates and value files) and compared with the code's constant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import CHART, Chart
from webhook.core.conventions import (
    LEDGER_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MIRROR_POD_ANNOTATION,
    NAMESPACE_NAME_LABEL,
    OPT_OUT_KEY,
    OPT_OUT_VALUE,
    OWNED_KEYS,
)
from webhook.core.policy import API_VERSION

CHART_FILES = sorted(
    [*(CHART / "templates").iterdir(), *CHART.glob("values*.yaml")], key=lambda p: p.name
)
_TEMPLATE_COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.DOTALL)
_KEY = re.compile(r"pullsecret-injector\.io/[A-Za-z0-9._-]*[A-Za-z0-9]")


def _keys(path: Path) -> set[str]:
    return set(_KEY.findall(path.read_text()))


def test_every_key_of_ours_in_the_chart_is_a_key_the_code_owns() -> None:
    found = {key: path.name for path in CHART_FILES for key in _keys(path)}
    assert found, "the scan found no key at all"
    unknown = {key: where for key, where in found.items() if key not in OWNED_KEYS | {API_VERSION}}
    assert unknown == {}


def test_the_ledger_the_chart_reads_is_the_annotation_the_controller_writes() -> None:
    policy_helpers = (CHART / "templates" / "_policy.tpl").read_text()
    (read,) = re.findall(r'dig "metadata" "annotations" "([^"]+)"', policy_helpers)
    assert read == LEDGER_ANNOTATION


def test_the_opt_out_default_is_the_key_the_code_reads() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["admissionWebhook"]["optOutLabel"] == OPT_OUT_KEY


def _mwc(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
    hook: dict[str, Any] = config["webhooks"][0]
    return hook


def test_the_webhook_configuration_uses_the_code_s_keys_and_values(chart: Chart) -> None:
    hook = _mwc(chart.render())
    namespace_keys = [e["key"] for e in hook["namespaceSelector"]["matchExpressions"]]
    assert namespace_keys[:2] == [NAMESPACE_NAME_LABEL, OPT_OUT_KEY]
    opt_out = hook["objectSelector"]["matchExpressions"][0]
    assert opt_out == {"key": OPT_OUT_KEY, "operator": "NotIn", "values": [OPT_OUT_VALUE]}
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert f"'{OPT_OUT_KEY}'" in conditions["not-opted-out-by-annotation"]
    assert f"!= '{OPT_OUT_VALUE}'" in conditions["not-opted-out-by-annotation"]
    assert f"'{MIRROR_POD_ANNOTATION}'" in conditions["not-a-mirror-pod"]


def test_the_admission_policies_check_the_label_the_code_writes(chart: Chart) -> None:
    objects = chart.render()
    policies = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"]
    checks = [
        v["expression"]
        for p in policies
        for v in [*(p["spec"].get("variables") or []), *p["spec"]["validations"]]
        if "labels[?" in v["expression"]
    ]
    assert len(checks) >= 3  # the Secret, its old version, the RoleBinding
    for expression in checks:
        assert f'labels[?"{MANAGED_BY_LABEL}"] == optional.of("{MANAGED_BY_VALUE}")' in expression


def test_managed_by_appears_only_as_helm_s_label_or_the_ownership_helper() -> None:
    """The chart's own objects carry managed-by: Helm; ours come from one helper."""
    allowed = {
        "app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}",  # _labels.tpl, the chart's
        "app.kubernetes.io/managed-by",  # the ownership helper's body
    }
    for path in CHART_FILES:
        code = _TEMPLATE_COMMENT.sub("", path.read_text())
        for line in code.splitlines():
            stripped = line.strip()
            if MANAGED_BY_LABEL not in stripped or stripped.startswith("#"):
                continue
            if "managed-by=" in stripped:
                continue  # refusal messages quote the helper's output ({{ $key }}={{ $value }})
            assert stripped in allowed, f"{path.name}: {stripped}"
    helpers = (CHART / "templates" / "_labels.tpl").read_text()
    key = re.search(r'define "pullsecret-injector.ownership.key" -}}\n(.*)\n', helpers)
    value = re.search(r'define "pullsecret-injector.ownership.value" -}}\n(.*)\n', helpers)
    assert key
    assert value
    assert (key[1], value[1]) == (MANAGED_BY_LABEL, MANAGED_BY_VALUE)
