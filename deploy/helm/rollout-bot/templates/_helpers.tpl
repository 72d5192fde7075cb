{{/* Names and labels shared by the templates. */}}
{{- define "rollout-bot.labels" -}}
app.kubernetes.io/name: rollout-bot
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rollout-bot.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ $tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{- define "rollout-bot.redisImage" -}}
{{- if .Values.redis.image.digest -}}
{{ .Values.redis.image.repository }}:{{ .Values.redis.image.tag }}@{{ .Values.redis.image.digest }}
{{- else -}}
{{ .Values.redis.image.repository }}:{{ .Values.redis.image.tag }}
{{- end -}}
{{- end -}}

{{- define "rollout-bot.slackSecret" -}}
{{- .Values.slack.existingSecret | default "rollout-bot-slack" -}}
{{- end -}}

{{- define "rollout-bot.redisSecret" -}}
{{- .Values.redis.existingSecret | default "rollout-redis-auth" -}}
{{- end -}}

{{- define "rollout-bot.sentinelSecret" -}}
{{- .Values.redis.sentinel.existingSecret | default "rollout-bot-redis-sentinel" -}}
{{- end -}}

{{/* The restricted container securityContext, the same for the bot and Redis. */}}
{{- define "rollout-bot.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* prometheus.headers as PROMETHEUS_HEADERS: Name=value,Name=value, in name order. */}}
{{- define "rollout-bot.prometheusHeaders" -}}
{{- $pairs := list -}}
{{- range $name, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%v" $name $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Where the bearer token's Secret key is mounted; the URL's credentials refused with it. */}}
{{- define "rollout-bot.prometheusTokenFile" -}}
{{- if regexMatch "://[^/]*@" .Values.prometheus.url -}}
{{- fail "prometheus.bearerToken.existingSecret: prometheus.url carries credentials (user:password@) too; give one of them" -}}
{{- end -}}
/etc/rollout-bot-prometheus/{{ .Values.prometheus.bearerToken.key }}
{{- end -}}
