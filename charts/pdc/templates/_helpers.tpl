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

{{/*
Labels of the chart's `helm test` Pod, which the operator's NetworkPolicy lets
reach the metrics port.
*/}}
{{- define "pdc.testSelector" -}}
app.kubernetes.io/name: pdc
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{/*
The peers (`to`) of a NetworkPolicy egress rule for a target of the networkPolicy
values ({cidrs, ports}): its CIDRs, or every address of both families when it has
none.
*/}}
{{- define "pdc.egressTo" -}}
{{- $peers := list -}}
{{- range (.cidrs | default (list "0.0.0.0/0" "::/0")) -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" .)) -}}
{{- end -}}
{{- toYaml $peers -}}
{{- end -}}
