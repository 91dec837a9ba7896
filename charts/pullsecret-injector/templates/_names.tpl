{{/*
Names. Every object name comes from one of these helpers, so tests, docs and the admission
policy (which lets the controller write its own certificate Secrets by name) can rely on them.
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

{{/* The user name the API server sees for each component (admission policy match conditions). */}}
{{- define "pullsecret-injector.webhook.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "pullsecret-injector.webhook.serviceAccountName" .) }}
{{- end }}

{{- define "pullsecret-injector.controller.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "pullsecret-injector.controller.serviceAccountName" .) }}
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

{{/* Self-managed mode: the CA (key included) the controller keeps next to the TLS Secret. */}}
{{- define "pullsecret-injector.caSecretName" -}}
{{- printf "%s-ca" (include "pullsecret-injector.tlsSecretName" .) }}
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
