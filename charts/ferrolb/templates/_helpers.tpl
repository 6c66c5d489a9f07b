{{/* Chart name, overridable with nameOverride. */}}
{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name (release-scoped). Truncated to 52 so that "-controller", "-speaker" and
"-memberlist" suffixes still fit the 63-character name limit.
*/}}
{{- define "ferrolb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrolb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ include "ferrolb.chart" . }}
{{ include "ferrolb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The image every component runs: one binary, subcommand per component. */}}
{{- define "ferrolb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "ferrolb.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (printf "%s-controller" (include "ferrolb.fullname" .)) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferrolb.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create }}
{{- default (printf "%s-speaker" (include "ferrolb.fullname" .)) .Values.speaker.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.speaker.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the MetalLB-format ConfigMap both components read: the user's own (existingConfigMap), or
"config" — the name MetalLB's manifests used, so a migrated ConfigMap keeps working unchanged.
*/}}
{{- define "ferrolb.configMapName" -}}
{{- default "config" .Values.existingConfigMap }}
{{- end }}

{{- define "ferrolb.memberlistSecretName" -}}
{{- default (printf "%s-memberlist" (include "ferrolb.fullname" .)) .Values.speaker.memberlist.existingSecret }}
{{- end }}

{{/* host:port for --metrics-addr; IPv6 bind addresses get brackets. */}}
{{- define "ferrolb.metricsAddr" -}}
{{- $host := .host }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int .port) }}
{{- else }}
{{- printf "%s:%d" $host (int .port) }}
{{- end }}
{{- end }}

{{/* RUST_LOG value: the component's own level, else the chart-wide one. */}}
{{- define "ferrolb.rustLog" -}}
{{- default .root.Values.logLevel .component.logLevel }}
{{- end }}

{{/* Refuse value combinations that cannot work, with a message naming the values. */}}
{{- define "ferrolb.validate" -}}
{{- if and .Values.configInline .Values.existingConfigMap }}
{{- fail "configInline and existingConfigMap are mutually exclusive: set one (the chart renders configInline into a ConfigMap; existingConfigMap names one you manage)" }}
{{- end }}
{{- if and (or .Values.configInline .Values.existingConfigMap) (ne .Values.configSource "configmap") }}
{{- fail "configInline and existingConfigMap are the legacy ConfigMap source: set configSource: configmap with them (or leave both empty and apply IPAddressPool/L2Advertisement objects with configSource: crds)" }}
{{- end }}
{{- end }}
