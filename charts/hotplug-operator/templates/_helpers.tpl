{{/* Chart name, overridable; DNS label sized. */}}
{{- define "hotplug-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of every object: the release name when it already says hotplug-operator, otherwise
release-chart. Kubernetes names are limited to 63 characters.
*/}}
{{- define "hotplug-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hotplug-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "hotplug-operator.labels" -}}
helm.sh/chart: {{ include "hotplug-operator.chart" . }}
{{ include "hotplug-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hotplug-operator
{{- end }}

{{/* Labels that select this release's pods; never change them on upgrade. */}}
{{- define "hotplug-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hotplug-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Namespace of the agents' Leases: agentLeases.namespace, else <release namespace>-agents.
*/}}
{{- define "hotplug-operator.agentLeaseNamespace" -}}
{{- default (printf "%s-agents" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.agentLeases.namespace }}
{{- end }}

{{/* ServiceAccount of the per-node agents. */}}
{{- define "hotplug-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hotplug-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
ServiceAccount of the central Deployment: its own, so that only it may label ElasticVMs
and is bound to the leader-election Role. With serviceAccount.create false it shares the
given one.
*/}}
{{- define "hotplug-operator.centralServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-central" (include "hotplug-operator.serviceAccountName" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "hotplug-operator.serviceAccountName" . }}
{{- end }}
{{- end }}

{{- define "hotplug-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Flags shared by every operator container. */}}
{{- define "hotplug-operator.commonArgs" -}}
- --metrics-bind-address=:{{ .Values.metrics.port }}
- --health-probe-bind-address=:{{ .Values.health.port }}
- --workers={{ .Values.workers }}
- --resync-period={{ .Values.resyncPeriod }}
- --log-level={{ .Values.logLevel }}
{{- end }}

{{/* Hook flags; the caller decides whether its pods have the hooks directory. */}}
{{- define "hotplug-operator.hookArgs" -}}
- --hooks-dir={{ .Values.hooks.dir }}
- --hook-timeout={{ .Values.hooks.timeout }}
{{- end }}

{{/* Ports, probes and resources shared by every operator container. */}}
{{- define "hotplug-operator.containerCommon" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
  - name: health
    containerPort: {{ .Values.health.port }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  initialDelaySeconds: 5
  periodSeconds: 20
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The hooks volume, when hooks come from the host or a ConfigMap. */}}
{{- define "hotplug-operator.hooksVolume" -}}
{{- if and .Values.hooks.dir .Values.hooks.hostPath }}
- name: hooks
  hostPath:
    path: {{ .Values.hooks.hostPath }}
    type: Directory
{{- else if and .Values.hooks.dir .Values.hooks.configMap }}
- name: hooks
  configMap:
    name: {{ .Values.hooks.configMap }}
    defaultMode: 0555
{{- end }}
{{- end }}

{{- define "hotplug-operator.hooksVolumeMount" -}}
{{- if and .Values.hooks.dir (or .Values.hooks.hostPath .Values.hooks.configMap) }}
- name: hooks
  mountPath: {{ .Values.hooks.dir }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Fails the render on contradictory values the schema can not express. */}}
{{- define "hotplug-operator.validate" -}}
{{- if and .Values.hooks.hostPath .Values.hooks.configMap }}
{{- fail "hooks.hostPath and hooks.configMap are exclusive: set at most one" }}
{{- end }}
{{- if and (or .Values.hooks.hostPath .Values.hooks.configMap) (not .Values.hooks.dir) }}
{{- fail "hooks.hostPath or hooks.configMap needs hooks.dir (where to mount them)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled" }}
{{- end }}
{{- end }}
