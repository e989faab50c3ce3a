{{- define "paved.labels" -}}
app.kubernetes.io/name: paved-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "paved.selector" -}}
app.kubernetes.io/name: paved-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
