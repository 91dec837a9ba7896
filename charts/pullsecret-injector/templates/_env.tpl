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
{{- /* The exclusions the webhook configuration's selectors state, enforced by the code too:
       the controller and reviews posted straight to the webhook never pass the selectors. */}}
- name: PSI_EXCLUDE_NAMESPACES
  value: {{ join "," .Values.admissionWebhook.excludeNamespaces | quote }}
- name: PSI_OPT_OUT_LABEL
  value: {{ .Values.admissionWebhook.optOutLabel | quote }}
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
{{- if .Values.webhook.clientAuth.caBundle }}
- name: PSI_TLS_CLIENT_CA_FILE
  value: /client-ca/ca.crt
{{- end }}
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
- name: PSI_CONTROLLER_QPS
  value: {{ .Values.controller.qps | toString | quote }}
- name: PSI_CONTROLLER_BURST
  value: {{ .Values.controller.burst | quote }}
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
