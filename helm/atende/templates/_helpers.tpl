{{/* The release's base name. */}}
{{- define "atende.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The `atende <role>` argument of a values key. */}}
{{- define "atende.roleArg" -}}
{{- if eq . "channelAdapter" -}}channel-adapter{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{- define "atende.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "gateway"). */}}
{{- define "atende.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ include "atende.roleArg" .role }}
{{- end -}}

{{- define "atende.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "atende.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "atende.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Refuses to render without the secrets unless development mode is chosen. */}}
{{- define "atende.secretName" -}}
{{- if .Values.development -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- required "secrets.existingSecret must name a Secret holding jwt-secret, grpc-internal-token, crypto-key, postgres-url and redis-url (or set development=true, never in production)" .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* One secret env var: (dict "root" $ "name" "ATENDE__X" "key" "k"); nothing without a Secret. */}}
{{- define "atende.secretEnv" -}}
{{- $secret := include "atende.secretName" .root -}}
{{- if and $secret .key }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{/* The environment every role and the migration job share. */}}
{{- define "atende.env" -}}
{{- $k := .Values.secrets.keys -}}
{{- include "atende.secretEnv" (dict "root" . "name" "ATENDE__GATEWAY__JWT_SECRET" "key" $k.jwtSecret) }}
{{- include "atende.secretEnv" (dict "root" . "name" "ATENDE__GRPC__INTERNAL_TOKEN" "key" $k.grpcInternalToken) }}
{{- include "atende.secretEnv" (dict "root" . "name" (printf "ATENDE__CRYPTO__KEYS__%s" (upper .Values.crypto.activeKeyId)) "key" $k.cryptoKey) }}
{{- include "atende.secretEnv" (dict "root" . "name" "ATENDE__POSTGRES__URL" "key" $k.postgresUrl) }}
{{- include "atende.secretEnv" (dict "root" . "name" "ATENDE__REDIS__URL" "key" $k.redisUrl) }}
{{- include "atende.secretEnv" (dict "root" . "name" "ATENDE__NATS__URL" "key" $k.natsUrl) }}
{{- end -}}
