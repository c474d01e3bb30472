{{/* Chart name, truncated to fit in a DNS label with suffixes. */}}
{{- define "brain-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped full name: <release>-brain-operator unless the release already says it. */}}
{{- define "brain-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "brain-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator pod; never change them (Deployment selectors are immutable). */}}
{{- define "brain-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "brain-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "brain-operator.labels" -}}
helm.sh/chart: {{ include "brain-operator.chart" . }}
{{ include "brain-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: braincluster
app.kubernetes.io/component: operator
{{- end -}}

{{- define "brain-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "brain-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "brain-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* True (non-empty) when the operator watches every namespace. */}}
{{- define "brain-operator.clusterwide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
The API access the operator needs in each namespace it reconciles (DESIGN §1, §5): read and
patch BrainClusters and their status, own the router Deployment, the StatefulSets, Services
and PodDisruptionBudgets it renders, delete silent pods (the StatefulSet recreates them), read
the journal PVCs (never delete them: they hold the Raft logs), and post Events.
*/}}
{{- define "brain-operator.namespacedRules" -}}
- apiGroups: ["brain.evospikenet.org"]
  resources: ["brainclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["brain.evospikenet.org"]
  resources: ["brainclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Cluster-scoped reads kopf makes at start-up and while running. */}}
{{- define "brain-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- if include "brain-operator.clusterwide" . }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}
