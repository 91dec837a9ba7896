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
