{{- define "pdc.labels" -}}
app.kubernetes.io/name: pdc
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pdc.selector" -}}
app.kubernetes.io/name: pdc
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The operator pods' affinity: the user's when set; by default, replicas preferably
on different nodes, so the node that runs the leader does not take the standbys
with it. Nothing when the value is null.
*/}}
{{- define "pdc.affinity" -}}
{{- if hasKey .Values "affinity" -}}
{{- if .Values.affinity -}}
{{- toYaml .Values.affinity -}}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels: {{- include "pdc.selector" . | nindent 12 }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The operator pods' topology spread: the user's when set; by default, replicas
spread over zones when the scheduler can (ScheduleAnyway: a cluster with one zone
still schedules them). Only pods of the same rollout count (pod-template-hash), so
a rolling update is not skewed by the pods it replaces. Nothing when the value is
null.
*/}}
{{- define "pdc.topologySpreadConstraints" -}}
{{- if hasKey .Values "topologySpreadConstraints" -}}
{{- if .Values.topologySpreadConstraints -}}
{{- toYaml .Values.topologySpreadConstraints -}}
{{- else -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  matchLabelKeys: [pod-template-hash]
  labelSelector:
    matchLabels: {{- include "pdc.selector" . | nindent 6 }}
{{- end -}}
{{- end -}}
{{- end -}}
