{{/* Names and labels shared by every object. */}}
{{- define "autoglm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "autoglm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: autoglm-monitor
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: (dict "ctx" $ "component" "exporter"). */}}
{{- define "autoglm.selector" -}}
app.kubernetes.io/name: autoglm-{{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{- define "autoglm.image" -}}
{{- printf "%s/autoglm-%s:%s" .ctx.Values.image.registry .component (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{/* Existing Secrets as volumes and mounts at /etc/autoglm/secrets/<name>. */}}
{{- define "autoglm.secretVolumes" -}}
{{- range . }}
- name: secret-{{ . }}
  secret:
    secretName: {{ . }}
{{- end }}
{{- end -}}
{{- define "autoglm.secretMounts" -}}
{{- range . }}
- name: secret-{{ . }}
  mountPath: /etc/autoglm/secrets/{{ . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The shared configuration file: the values' config section with the keys the
chart owns filled in.
*/}}
{{- define "autoglm.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $exporter := default (dict) (get $cfg "exporter") -}}
{{- $_ := set $exporter "source" .Values.exporter.source -}}
{{- if eq .Values.exporter.source "accesslog" -}}
{{- $log := dict "path" (printf "/var/log/autoglm-access/%s" .Values.exporter.accessLog.file) "format" .Values.exporter.accessLog.format -}}
{{- if .Values.exporter.accessLog.serviceName -}}
{{- $_ := set $log "service_name" .Values.exporter.accessLog.serviceName -}}
{{- end -}}
{{- $_ := set $exporter "accesslog" $log -}}
{{- else if .Values.exporter.kubernetes -}}
{{- $_ := set $exporter "kubernetes" (dict "enabled" true) -}}
{{- end -}}
{{- $_ := set $cfg "exporter" $exporter -}}
{{- $rulegen := default (dict) (get $cfg "rulegen") -}}
{{- $output := default (dict) (get $rulegen "output") -}}
{{- $kind := ternary "prometheusrule" "configmap" (eq .Values.rulegen.output "prometheusRule") -}}
{{- $k8s := dict "kind" $kind "name" .Values.rulegen.outputName -}}
{{- if .Values.rulegen.outputLabels -}}
{{- $_ := set $k8s "labels" .Values.rulegen.outputLabels -}}
{{- end -}}
{{- $_ := set $output "kubernetes" $k8s -}}
{{- /* The mixin's PrometheusRule already holds the recording rules: never load both. */ -}}
{{- $_ := set $output "recording_rules" (not .Values.prometheusRule.enabled) -}}
{{- $_ := set $rulegen "output" $output -}}
{{- $_ := set $cfg "rulegen" $rulegen -}}
{{- $receiver := default (dict) (get $cfg "receiver") -}}
{{- $storage := default (dict) (get $receiver "storage") -}}
{{- $_ := set $storage "path" "/var/lib/autoglm-receiver" -}}
{{- $_ := set $receiver "storage" $storage -}}
{{- if not (get $receiver "channels") -}}
{{- $_ := set $receiver "channels" (dict "log" (dict "type" "file" "path" "/var/lib/autoglm-receiver/notifications.jsonl")) -}}
{{- $_ := set $receiver "routes" (list (dict "name" "all" "matchers" (list "severity=~\".+\"") "channels" (list "log"))) -}}
{{- end -}}
{{- $_ := set $cfg "receiver" $receiver -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "autoglm.validate" -}}
{{- if not (has .Values.exporter.source (list "ebpf" "accesslog")) -}}
{{- fail (printf "exporter.source must be ebpf or accesslog, got %q" .Values.exporter.source) -}}
{{- end -}}
{{- if not (has .Values.rulegen.output (list "prometheusRule" "configMap")) -}}
{{- fail (printf "rulegen.output must be prometheusRule or configMap, got %q" .Values.rulegen.output) -}}
{{- end -}}
{{- end -}}
