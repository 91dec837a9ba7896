{{/*
What the policy implies for RBAC, as YAML. Helm must derive the Roles at render time, so the
chart reads the policy itself; Python is the reference for that reading:
webhook/core/policyfacts.py computes the same facts from the parsed policy
(`pullsecret-injector validate-policy --output json`), and tests/chart compares the RBAC
rendered from this helper with them for every valid policy fixture in the repository.

  sourceNamespaces  namespaces holding source Secrets (the policy's, + rbac.extraSourceNamespaces)
  sourceSecrets     source Secret names per namespace (the policy's)
  byName            source namespaces whose Role lists sourceSecrets by name
                    (rbac.sourceSecretsByName); every other source namespace is readable whole
  managedNames      copy names: targetName, else name (+ rbac.managedSecretNames)
  backfill          the controller may list, watch and patch ServiceAccounts
  imagePuller       the controller may manage system:image-puller RoleBindings

As in webhook/core/policy.py: a secret's namespace defaults to defaults.sourceNamespace, its
copy name to its own name; "- corp-pull" is shorthand for {name: corp-pull}.
*/}}
{{- define "pullsecret-injector.policyFacts" -}}
{{- $sources := list }}
{{- $sourceSecrets := dict }}
{{- $names := list }}
{{- $backfill := false }}
{{- $grants := false }}
{{- if not .Values.existingPolicyConfigMap }}
{{- $policy := .Values.policy | default dict }}
{{- $defaultSource := (get ($policy.defaults | default dict) "sourceNamespace") | default "" }}
{{- range $rule := (get $policy "rules" | default list) }}
{{- range $secret := (get $rule "secrets" | default list) }}
{{- $ref := $secret }}
{{- if kindIs "string" $secret }}{{ $ref = dict "name" $secret }}{{ end }}
{{- $namespace := get $ref "namespace" | default $defaultSource }}
{{- if $namespace }}
{{- $sources = append $sources $namespace }}
{{- $_ := set $sourceSecrets $namespace (append (get $sourceSecrets $namespace | default list) (get $ref "name") | uniq | sortAlpha) }}
{{- end }}
{{- $target := get $ref "targetName" | default (get $ref "name") }}
{{- if $target }}{{ $names = append $names $target }}{{ end }}
{{- end }}
{{- if (get (get $rule "serviceAccounts" | default dict) "backfill") }}{{ $backfill = true }}{{ end }}
{{- end }}
{{- if (get $policy "imagePullerGrants") }}{{ $grants = true }}{{ end }}
{{- end }}
{{- $sources = concat $sources (.Values.rbac.extraSourceNamespaces | default list) | uniq | sortAlpha }}
{{- $byName := list }}
{{- range $namespace := (.Values.rbac.sourceSecretsByName | default list) }}
{{- if has $namespace $sources }}{{ $byName = append $byName $namespace }}{{ end }}
{{- end }}
{{- $names = concat $names (.Values.rbac.managedSecretNames | default list) }}
{{- if kindIs "bool" .Values.rbac.serviceAccountBackfill }}
{{- $backfill = .Values.rbac.serviceAccountBackfill }}
{{- end }}
{{- if kindIs "bool" .Values.rbac.openshiftImagePuller }}
{{- $grants = .Values.rbac.openshiftImagePuller }}
{{- end }}
sourceNamespaces: {{ $sources | toJson }}
sourceSecrets: {{ $sourceSecrets | toJson }}
byName: {{ $byName | uniq | sortAlpha | toJson }}
managedNames: {{ $names | uniq | sortAlpha | toJson }}
backfill: {{ $backfill }}
imagePuller: {{ $grants }}
{{- end }}

{{/*
Copy names the controller may write: the policy's, plus (on upgrade, when retainLedgerNames)
the names recorded in its Lease ledger, so copies of a just-removed rule can still be deleted.
`lookup` is empty under `helm template` and dry runs.
*/}}
{{- define "pullsecret-injector.controllerManagedNames" -}}
{{- $facts := include "pullsecret-injector.policyFacts" . | fromYaml }}
{{- $names := $facts.managedNames | default list }}
{{- if .Values.rbac.retainLedgerNames }}
{{- $lease := lookup "coordination.k8s.io/v1" "Lease" .Release.Namespace (include "pullsecret-injector.leaseName" .) }}
{{- $ledger := dig "metadata" "annotations" "pullsecret-injector.io/managed-names" "" ($lease | default dict) }}
{{- range splitList "," $ledger }}
{{- if . }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
The read-only Role (and its binding) in every source namespace, for one component:
(dict "context" $ "component" "webhook"). Both components read the same sources.

A source namespace exists to hold pull secrets, so its Role grants every Secret in it: a
source secret added by a live policy edit is readable at once, and the components can list
and watch the namespace instead of one watch per name. Namespaces in rbac.sourceSecretsByName
hold other Secrets too (openshift-config: identity-provider and other platform secrets), so
their Role names the policy's source secrets and nothing else; a new source secret there
needs `helm upgrade`.
*/}}
{{- define "pullsecret-injector.sourceRoles" -}}
{{- $ctx := .context }}
{{- $component := .component }}
{{- $facts := include "pullsecret-injector.policyFacts" $ctx | fromYaml }}
{{- $name := printf "%s-source" (include (printf "pullsecret-injector.%s.fullname" $component) $ctx) }}
{{- $account := include (printf "pullsecret-injector.%s.serviceAccountName" $component) $ctx }}
{{- range $namespace := $facts.sourceNamespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "pullsecret-injector.labels" (dict "context" $ctx "component" $component) | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    {{- if has $namespace $facts.byName }}
    # rbac.sourceSecretsByName: only the policy's source secrets; the namespace's other
    # Secrets stay unreadable.
    resourceNames:
      {{- get $facts.sourceSecrets $namespace | toYaml | nindent 6 }}
    {{- end }}
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "pullsecret-injector.labels" (dict "context" $ctx "component" $component) | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $account }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The namespace label keys the policy's scopes select on (defaults.namespaces, every rule's
namespaces and every imagePullerGrants pullers: matchLabels keys and matchExpressions keys),
plus labelGuard.labels, as a sorted JSON list. Whoever may set one of these labels on a
namespace can steer a credential into it; the label guard refuses that to everyone else.
kubernetes.io/metadata.name is left out: the API server sets it to the name itself.
*/}}
{{- define "pullsecret-injector.guardedLabels" -}}
{{- $keys := .Values.labelGuard.labels | default list }}
{{- if not .Values.existingPolicyConfigMap }}
{{- $policy := .Values.policy | default dict }}
{{- $scopes := list (get ($policy.defaults | default dict) "namespaces") }}
{{- range $rule := (get $policy "rules" | default list) }}
{{- if kindIs "map" $rule }}{{ $scopes = append $scopes (get $rule "namespaces") }}{{ end }}
{{- end }}
{{- range $grant := (get $policy "imagePullerGrants" | default list) }}
{{- if kindIs "map" $grant }}{{ $scopes = append $scopes (get $grant "pullers") }}{{ end }}
{{- end }}
{{- range $scope := $scopes }}
{{- $selector := get ($scope | default dict) "selector" | default dict }}
{{- range $key, $_ := (get $selector "matchLabels" | default dict) }}{{ $keys = append $keys $key }}{{ end }}
{{- range $expression := (get $selector "matchExpressions" | default list) }}
{{- if get $expression "key" }}{{ $keys = append $keys (get $expression "key") }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- without ($keys | uniq | sortAlpha) "kubernetes.io/metadata.name" | toJson }}
{{- end }}
