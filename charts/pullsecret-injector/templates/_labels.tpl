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
The label the product itself puts on what it writes (copies, its certificate Secrets,
image-puller RoleBindings) and reads to decide ownership: MANAGED_BY_LABEL = MANAGED_BY_VALUE
in webhook/core/conventions.py (tests/chart checks the two agree). Not the chart's own
`app.kubernetes.io/managed-by: Helm` above: Helm never writes those objects.
*/}}
{{- define "pullsecret-injector.ownership.key" -}}
app.kubernetes.io/managed-by
{{- end }}

{{- define "pullsecret-injector.ownership.value" -}}
pullsecret-injector
{{- end }}
