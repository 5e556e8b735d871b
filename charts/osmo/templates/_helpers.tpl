{{- define "osmo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "osmo.serviceAccountName" -}}
{{- default (include "osmo.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "osmo.labels" -}}
app.kubernetes.io/name: osmo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "osmo.selectorLabels" -}}
app.kubernetes.io/name: osmo
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Lease the replicas compete for: one per release, so two releases never share it. */}}
{{- define "osmo.leaseName" -}}
{{- printf "%s-leader" (include "osmo.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
