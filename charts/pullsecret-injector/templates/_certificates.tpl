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
