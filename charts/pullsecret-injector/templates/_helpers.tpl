{{/*
Names. Every object name comes from one of these helpers, so tests and docs can rely on them.
*/}}
{{- define "pullsecret-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pullsecret-injector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pullsecret-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Component names (Deployment, Service, ServiceAccount, RBAC objects). 52 characters leave room
for suffixes such as "-source" and for ReplicaSet/pod hashes. */}}
{{- define "pullsecret-injector.webhook.fullname" -}}
{{- printf "%s-webhook" (include "pullsecret-injector.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "pullsecret-injector.controller.fullname" -}}
{{- printf "%s-controller" (include "pullsecret-injector.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "pullsecret-injector.webhook.serviceAccountName" -}}
{{- default (include "pullsecret-injector.webhook.fullname" .) .Values.webhook.serviceAccount.name }}
{{- end }}

{{- define "pullsecret-injector.controller.serviceAccountName" -}}
{{- default (include "pullsecret-injector.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- end }}

{{/* The Service the API server calls; the serving certificate covers its DNS names. */}}
{{- define "pullsecret-injector.webhook.serviceName" -}}
{{- include "pullsecret-injector.webhook.fullname" . }}
{{- end }}

{{- define "pullsecret-injector.policyConfigMapName" -}}
{{- if .Values.existingPolicyConfigMap }}
{{- .Values.existingPolicyConfigMap }}
{{- else }}
{{- printf "%s-policy" (include "pullsecret-injector.fullname" .) }}
{{- end }}
{{- end }}

{{- define "pullsecret-injector.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "pullsecret-injector.fullname" .)) .Values.certificates.secretName }}
{{- end }}

{{- define "pullsecret-injector.leaseName" -}}
{{- include "pullsecret-injector.controller.fullname" . }}
{{- end }}

{{/* Cluster-scoped. */}}
{{- define "pullsecret-injector.webhookConfigurationName" -}}
{{- include "pullsecret-injector.fullname" . }}
{{- end }}

{{/* The webhook entry's name: the `name` label of the API server's admission metrics
(apiserver_admission_webhook_fail_open_count). It carries the release namespace so that two
releases never report under the same name. */}}
{{- define "pullsecret-injector.webhookName" -}}
{{- printf "%s.%s.pullsecret-injector.io" (include "pullsecret-injector.fullname" .) .Release.Namespace }}
{{- end }}

{{/* cert-manager objects. */}}
{{- define "pullsecret-injector.certManager.servingCertificateName" -}}
{{- printf "%s-serving" (include "pullsecret-injector.fullname" .) }}
{{- end }}

{{- define "pullsecret-injector.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Labels. One helper for all objects: call with (dict "context" $ "component" "webhook").
Selectors use only name + instance (+ component): labels such as version and helm.sh/chart
change on every upgrade and a Deployment selector is immutable.
*/}}
{{- define "pullsecret-injector.labels" -}}
{{- $ctx := .context -}}
helm.sh/chart: {{ include "pullsecret-injector.chart" $ctx }}
{{ include "pullsecret-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: pullsecret-injector
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "pullsecret-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pullsecret-injector.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
What the policy implies for RBAC, as YAML: sourceNamespaces, sourceSecrets (names per
namespace: the Roles grant only those), managedNames, backfill.
Mirrors webhook/core/policy.py: a secret's namespace defaults to defaults.sourceNamespace, its copy
name to its own name; "- corp-pull" is shorthand for {name: corp-pull}.
*/}}
{{- define "pullsecret-injector.policyFacts" -}}
{{- $sources := list }}
{{- $sourceSecrets := dict }}
{{- $names := list }}
{{- $backfill := false }}
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
{{- end }}
{{- $sources = concat $sources (.Values.rbac.extraSourceNamespaces | default list) }}
{{- $names = concat $names (.Values.rbac.managedSecretNames | default list) }}
{{- if kindIs "bool" .Values.rbac.serviceAccountBackfill }}
{{- $backfill = .Values.rbac.serviceAccountBackfill }}
{{- end }}
sourceNamespaces: {{ $sources | uniq | sortAlpha | toJson }}
{{- /* Namespaces given only through rbac.extraSourceNamespaces (no names known): the
       whole namespace is readable there. Others are limited to the policy's secrets. */}}
sourceSecrets: {{ $sourceSecrets | toJson }}
managedNames: {{ $names | uniq | sortAlpha | toJson }}
backfill: {{ $backfill }}
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

{{/* caBundle for the webhook configuration, or nothing. */}}
{{- define "pullsecret-injector.caBundle" -}}
{{- if eq .Values.certificates.mode "provided" }}
{{- $ca := .Values.certificates.provided.caBundle | trim }}
{{- if contains "-----BEGIN" $ca }}{{ $ca | b64enc }}{{ else }}{{ $ca }}{{ end }}
{{- else if eq .Values.certificates.mode "self-managed" }}
{{- /* The controller patches the caBundle after install; keep it across upgrades. */}}
{{- $existing := lookup "admissionregistration.k8s.io/v1" "MutatingWebhookConfiguration" "" (include "pullsecret-injector.webhookConfigurationName" .) }}
{{- range (dig "webhooks" list ($existing | default dict)) }}
{{- if eq (get . "name") (include "pullsecret-injector.webhookName" $) }}{{ dig "clientConfig" "caBundle" "" . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Default soft scheduling: spread replicas, never refuse to schedule them.
*/}}
{{- define "pullsecret-injector.affinity" -}}
{{- $component := .component }}
{{- with .values.affinity }}
{{- toYaml . }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "pullsecret-injector.selectorLabels" (dict "context" .context "component" $component) | nindent 12 }}
{{- end }}
{{- end }}

{{- define "pullsecret-injector.topologySpreadConstraints" -}}
{{- $component := .component }}
{{- with .values.topologySpreadConstraints }}
{{- toYaml . }}
{{- else }}
{{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
- maxSkew: 1
  topologyKey: {{ . }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "pullsecret-injector.selectorLabels" (dict "context" $.context "component" $component) | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/* PodDisruptionBudget spec body: minAvailable 1 unless the user set either key (hasKey, so
an explicit 0 is respected). */}}
{{- define "pullsecret-injector.pdbSpec" -}}
{{- $pdb := .values.podDisruptionBudget }}
{{- if not (or (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable")) }}
minAvailable: 1
{{- end }}
{{- if hasKey $pdb "minAvailable" }}
minAvailable: {{ $pdb.minAvailable }}
{{- end }}
{{- if hasKey $pdb "maxUnavailable" }}
maxUnavailable: {{ $pdb.maxUnavailable }}
{{- end }}
{{- end }}

{{/*
Every value problem at once, as one error, the way bitnami's validateValues does: an operator
fixes them in one pass. Included by every template that depends on the values it checks.
*/}}
{{- define "pullsecret-injector.validateValues" -}}
{{- $errors := list }}
{{- $mode := .Values.certificates.mode }}
{{- if and (eq $mode "provided") (not (.Values.certificates.provided.caBundle | trim)) }}
{{- $errors = append $errors "certificates.mode=provided needs certificates.provided.caBundle: the PEM of the CA that signed the certificate in the TLS Secret (without it the API server cannot verify the webhook)" }}
{{- end }}
{{- if and (ne $mode "provided") .Values.certificates.provided.caBundle }}
{{- $errors = append $errors (printf "certificates.provided.caBundle is set but certificates.mode is %q: it would be ignored; set mode to provided or remove it" $mode) }}
{{- end }}
{{- if and (eq $mode "self-managed") (not .Values.controller.enabled) }}
{{- $errors = append $errors "certificates.mode=self-managed needs controller.enabled=true: the controller creates and renews the certificate" }}
{{- end }}
{{- if and (eq .Values.service.type "ExternalName") (not .Values.service.externalName) }}
{{- $errors = append $errors "service.type=ExternalName needs service.externalName (the host the API server should call)" }}
{{- end }}
{{- if and .Values.service.externalName (ne .Values.service.type "ExternalName") }}
{{- $errors = append $errors (printf "service.externalName is set but service.type is %q; set service.type=ExternalName" .Values.service.type) }}
{{- end }}
{{- if .Values.existingPolicyConfigMap }}
{{- if (.Values.policy | default dict).rules }}
{{- $errors = append $errors "both existingPolicyConfigMap and policy.rules are set: the chart would ignore policy; remove one of them" }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.rbac.extraSourceNamespaces) }}
{{- $errors = append $errors "existingPolicyConfigMap needs rbac.extraSourceNamespaces: the chart cannot read that ConfigMap, and without a Role in the source namespaces the webhook cannot read any pull secret" }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.rbac.managedSecretNames) }}
{{- $errors = append $errors "existingPolicyConfigMap needs rbac.managedSecretNames: the copy names the policy creates (targetName or name of every secret), so RBAC can allow watching and updating exactly those" }}
{{- end }}
{{- else }}
{{- $policy := .Values.policy | default dict }}
{{- $defaultSource := (get ($policy.defaults | default dict) "sourceNamespace") | default "" }}
{{- range $i, $rule := (get $policy "rules" | default list) }}
{{- if not (kindIs "map" $rule) }}
{{- $errors = append $errors (printf "policy.rules[%d] must be a mapping" $i) }}
{{- else }}
{{- range $j, $secret := (get $rule "secrets" | default list) }}
{{- if and (kindIs "map" $secret) (not (get $secret "namespace")) (not $defaultSource) }}
{{- $errors = append $errors (printf "policy.rules[%d].secrets[%d] has no namespace and policy.defaults.sourceNamespace is not set" $i $j) }}
{{- end }}
{{- if and (kindIs "string" $secret) (not $defaultSource) }}
{{- $errors = append $errors (printf "policy.rules[%d].secrets[%d] (%s) needs policy.defaults.sourceNamespace" $i $j $secret) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $facts := include "pullsecret-injector.policyFacts" . | fromYaml }}
{{- $tls := include "pullsecret-injector.tlsSecretName" . }}
{{- range $name := list $tls (printf "%s-ca" $tls) }}
{{- if has $name $facts.managedNames }}
{{- $errors = append $errors (printf "copy name %q (from policy or rbac.managedSecretNames) is the webhook's own TLS Secret; give the policy secret a different targetName" $name) }}
{{- end }}
{{- end }}
{{- range $component := list "webhook" "controller" }}
{{- $values := get $.Values $component }}
{{- $pdb := $values.podDisruptionBudget }}
{{- if or (eq $component "webhook") $.Values.controller.enabled }}
{{- if and (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable") }}
{{- $errors = append $errors (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable, not both" $component) }}
{{- end }}
{{- $min := 1 }}
{{- if hasKey $pdb "minAvailable" }}{{ $min = $pdb.minAvailable }}{{ end }}
{{- if and $pdb.enabled (eq (int $values.replicaCount) 1) (not (hasKey $pdb "maxUnavailable")) (not (has (toString $min) (list "0" "0%"))) }}
{{- $errors = append $errors (printf "%s.replicaCount=1 with a PodDisruptionBudget of minAvailable %v would block every node drain; raise replicaCount or set %s.podDisruptionBudget.enabled=false" $component $min $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- $grace := int .Values.webhook.terminationGracePeriodSeconds }}
{{- $needed := add .Values.webhook.preStopSleepSeconds .Values.webhook.gracefulTimeoutSeconds }}
{{- if le $grace (int $needed) }}
{{- $errors = append $errors (printf "webhook.terminationGracePeriodSeconds (%d) must exceed webhook.preStopSleepSeconds + webhook.gracefulTimeoutSeconds (%d), or in-flight reviews are killed" $grace (int $needed)) }}
{{- end }}
{{- if eq (int .Values.webhook.port) (int .Values.webhook.healthPort) }}
{{- $errors = append $errors "webhook.port and webhook.healthPort must differ" }}
{{- end }}
{{- if and (ne .Values.service.type "ExternalName") (eq (int .Values.service.port) (int .Values.webhook.healthPort)) }}
{{- $errors = append $errors (printf "service.port (%d) collides with the Service's metrics port (webhook.healthPort)" (int .Values.service.port)) }}
{{- end }}
{{- range $key, $_ := .Values.commonLabels }}
{{- if or (hasPrefix "app.kubernetes.io/" $key) (eq $key "helm.sh/chart") }}
{{- $errors = append $errors (printf "commonLabels.%s: the chart sets this label itself" $key) }}
{{- end }}
{{- end }}
{{- range $component := list "webhook" "controller" }}
{{- $own := list }}
{{- range (include (printf "pullsecret-injector.%s.env" $component) $ | fromYamlArray) }}{{ $own = append $own .name }}{{ end }}
{{- range (get (get $.Values $component) "extraEnv") }}
{{- if has .name $own }}
{{- $errors = append $errors (printf "%s.extraEnv: %s is already set by the chart from values; change that value instead" $component .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}

{{/*
Environment of each component. Every PSI_* name is a field of webhook/settings.py (unknown ones
are rejected at startup); the e2e harness starts processes with exactly this env.
*/}}
{{- define "pullsecret-injector.commonEnv" -}}
- name: PSI_POLICY_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: PSI_POLICY_CONFIGMAP
  value: {{ include "pullsecret-injector.policyConfigMapName" . | quote }}
- name: PSI_POLICY_KEY
  value: {{ .Values.policyKey | quote }}
- name: PSI_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: PSI_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: TMPDIR
  value: /tmp
{{- end }}

{{- define "pullsecret-injector.webhook.env" -}}
{{ include "pullsecret-injector.commonEnv" . }}
- name: PSI_PORT
  value: {{ .Values.webhook.port | quote }}
- name: PSI_HEALTH_PORT
  value: {{ .Values.webhook.healthPort | quote }}
- name: PSI_TLS_CERT_FILE
  value: /tls/tls.crt
- name: PSI_TLS_KEY_FILE
  value: /tls/tls.key
- name: PSI_WORKERS
  value: {{ .Values.webhook.workers | quote }}
- name: PSI_THREADS
  value: {{ .Values.webhook.threads | quote }}
- name: PSI_GRACEFUL_TIMEOUT_SECONDS
  value: {{ .Values.webhook.gracefulTimeoutSeconds | quote }}
- name: PSI_WRITE_COPIES
  value: {{ .Values.webhook.writeCopies | quote }}
{{- /* Half the API server's timeout for creating missing copies: the rest is for the review. */}}
- name: PSI_ENSURE_TIMEOUT_SECONDS
  value: {{ divf .Values.admissionWebhook.timeoutSeconds 2 | toString | quote }}
{{- end }}

{{- define "pullsecret-injector.controller.env" -}}
{{ include "pullsecret-injector.commonEnv" . }}
- name: PSI_METRICS_PORT
  value: {{ .Values.controller.metricsPort | quote }}
- name: PSI_LEASE_NAME
  value: {{ include "pullsecret-injector.leaseName" . | quote }}
- name: PSI_LEASE_DURATION_SECONDS
  value: {{ .Values.controller.leaseDurationSeconds | quote }}
- name: PSI_RESYNC_SECONDS
  value: {{ .Values.controller.resyncSeconds | quote }}
- name: PSI_CERT_MODE
  value: {{ .Values.certificates.mode | quote }}
- name: PSI_CERT_SECRET
  value: {{ include "pullsecret-injector.tlsSecretName" . | quote }}
- name: PSI_WEBHOOK_CONFIGURATION
  value: {{ include "pullsecret-injector.webhookConfigurationName" . | quote }}
- name: PSI_SERVICE_NAME
  value: {{ include "pullsecret-injector.webhook.serviceName" . | quote }}
{{- if eq .Values.certificates.mode "self-managed" }}
- name: PSI_CERT_VALIDITY_DAYS
  value: {{ .Values.certificates.selfManaged.certValidityDays | quote }}
- name: PSI_CA_VALIDITY_DAYS
  value: {{ .Values.certificates.selfManaged.caValidityDays | quote }}
{{- end }}
{{- end }}
