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
{{- if not (hasKey $policy "rules") }}
{{- $errors = append $errors "policy.rules is missing: a policy needs a rules list (an empty list [] installs a webhook that injects nothing). `rules:` with nothing after it is null, and Helm deletes a null value together with the chart's default" }}
{{- end }}
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
{{- range $namespace := $facts.byName }}
{{- if not (get $facts.sourceSecrets $namespace) }}
{{- $errors = append $errors (printf "rbac.sourceSecretsByName lists %s, but the policy names no source secret there (it comes only from rbac.extraSourceNamespaces), so its Role could name nothing; remove it from one of the two lists" $namespace) }}
{{- end }}
{{- end }}
{{- if and .Values.admissionPolicy.enabled (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- $errors = append $errors (printf "admissionPolicy.enabled needs Kubernetes 1.30 or later (ValidatingAdmissionPolicy v1); this cluster is %s. Upgrade, or set admissionPolicy.enabled=false and read the warning it prints" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if .Values.labelGuard.enabled }}
{{- if semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version }}
{{- $errors = append $errors (printf "labelGuard.enabled needs Kubernetes 1.30 or later (ValidatingAdmissionPolicy v1); this cluster is %s" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if not (include "pullsecret-injector.guardedLabels" . | fromJsonArray) }}
{{- $errors = append $errors "labelGuard.enabled but no label to guard: the policy's namespace selectors name no label (or existingPolicyConfigMap hides them from the chart); list the keys in labelGuard.labels" }}
{{- end }}
{{- end }}
{{- $tls := include "pullsecret-injector.tlsSecretName" . }}
{{- range $name := list $tls (include "pullsecret-injector.caSecretName" .) }}
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
