{{/* caBundle for the webhook configuration, or nothing. */}}
{{- define "pullsecret-injector.caBundle" -}}
{{- if eq .Values.certificates.mode "provided" }}
{{- $ca := .Values.certificates.provided.caBundle | trim }}
{{- if contains "-----BEGIN" $ca }}{{ $ca | b64enc }}{{ else }}{{ $ca }}{{ end }}
{{- /* self-managed: nothing. The controller owns the field (it watches the configuration and
       patches caBundle at once); never rendered, no upgrade or GitOps sync ever touches it:
       Helm's three-way merge and kubectl apply leave a field alone that neither the old nor
       the new manifest has, and `helm template` (Argo CD) renders the same bytes as
       `helm install`. No lookup: the same values always render the same manifest. */}}
{{- end }}
{{- end }}
