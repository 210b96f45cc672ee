{{- define "vigil.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- define "vigil.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "vigil.labels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "vigil.webhookService" -}}{{ include "vigil.fullname" . }}-webhook{{- end -}}
{{- define "vigil.useCertManager" -}}{{ and .Values.tls.certManager (.Capabilities.APIVersions.Has "cert-manager.io/v1") }}{{- end -}}
