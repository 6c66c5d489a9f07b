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

{{- /* Whether the controller creates and owns the gossip key Secret at runtime (never rendered
       here: under `helm template` a rendered random key would change on every sync). */}}
{{- define "ferrolb.managesMemberlistSecret" -}}
{{- if and .Values.controller.enabled .Values.speaker.enabled .Values.speaker.memberlist.enabled (not .Values.speaker.memberlist.existingSecret) }}true{{ end }}
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

{{/*
"true" when the Prometheus Operator CRD of .kind is served (or the check is skipped): rendering a
ServiceMonitor into a cluster without the CRD would fail the whole install.
*/}}
{{- define "ferrolb.hasMonitoringCRD" -}}
{{- if or .root.Values.prometheus.skipCRDCheck (.root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind)) }}true{{ end }}
{{- end }}

{{/*
.text with ferrolb's metric names replaced by MetalLB's when metrics.metallbNames is on, so the
dashboard and alerts read what the binaries export (src/metrics.rs holds the same pairs; the
chart tests check every name used against what the code exports).
*/}}
{{- define "ferrolb.metricNames" -}}
{{- $text := .text }}
{{- if .root.Values.metrics.metallbNames }}
{{- range $from, $to := dict
  "ferrolb_allocator_" "metallb_allocator_"
  "ferrolb_bgp_" "metallb_bgp_"
  "ferrolb_config_loaded" "metallb_k8s_client_config_loaded_bool"
  "ferrolb_config_stale" "metallb_k8s_client_config_stale_bool"
  "ferrolb_config_updates_total" "metallb_k8s_client_updates_total"
  "ferrolb_config_update_errors_total" "metallb_k8s_client_update_errors_total"
  "ferrolb_layer2_" "metallb_layer2_"
  "ferrolb_speaker_announced" "metallb_speaker_announced" }}
{{- $text = replace $from $to $text }}
{{- end }}
{{- end }}
{{- $text }}
{{- end }}

{{/* Refuse value combinations that cannot work, with a message naming the values. */}}
{{- define "ferrolb.validate" -}}
{{- if and .Values.metrics.tlsSecret (not .Values.metrics.secure) }}
{{- fail "metrics.tlsSecret is the certificate of metrics.secure: set metrics.secure: true with it (or leave it empty)" }}
{{- end }}
{{- if and .Values.metrics.secure .Values.prometheus.podMonitor.enabled }}
{{- fail "prometheus.podMonitor cannot scrape with metrics.secure: a PodMonitor cannot send Prometheus' own ServiceAccount token, which /metrics then requires; use prometheus.serviceMonitor" }}
{{- end }}
{{- if and .Values.configInline .Values.existingConfigMap }}
{{- fail "configInline and existingConfigMap are mutually exclusive: set one (the chart renders configInline into a ConfigMap; existingConfigMap names one you manage)" }}
{{- end }}
{{- if and (or .Values.configInline .Values.existingConfigMap) (ne .Values.configSource "configmap") }}
{{- fail "configInline and existingConfigMap are the legacy ConfigMap source: set configSource: configmap with them (or leave both empty and apply IPAddressPool/L2Advertisement objects with configSource: crds)" }}
{{- end }}
{{- end }}

{{/*
--metrics-secure and its certificate, for both components' args (nindent'ed by the caller). The
Secret of metrics.tlsSecret is mounted at /etc/ferrolb/metrics-tls ("ferrolb.metricsTlsVolume").
*/}}
{{- define "ferrolb.metricsSecureArgs" -}}
{{- if .Values.metrics.secure }}
- --metrics-secure
{{- if .Values.metrics.tlsSecret }}
- --metrics-cert-file=/etc/ferrolb/metrics-tls/tls.crt
- --metrics-key-file=/etc/ferrolb/metrics-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrolb.metricsTlsMount" -}}
- name: metrics-tls
  mountPath: /etc/ferrolb/metrics-tls
  readOnly: true
{{- end }}

{{- define "ferrolb.metricsTlsVolume" -}}
- name: metrics-tls
  secret:
    secretName: {{ .Values.metrics.tlsSecret }}
    defaultMode: 0400
{{- end }}

