{{/* Names and labels. */}}
{{- define "ysync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ysync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "ysync.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "ysync.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ysync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ysync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The `helm test` pod and the trial components: other names, so that the Service, PDB
     and spread constraints of the ysync pods never select them. */}}
{{- define "ysync.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ysync.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ysync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ysync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ysync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ysync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ysync.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* What the values amount to. */}}
{{- define "ysync.storeType" -}}
{{- if .Values.trial.postgresql.enabled }}postgresql{{ else }}{{ .Values.store.type }}{{ end }}
{{- end }}

{{- define "ysync.redisEnabled" -}}
{{- if or .Values.redis.enabled .Values.trial.redis.enabled }}true{{ end }}
{{- end }}

{{/* Pods that may run at once: replicaCount, or the autoscaler's floor. */}}
{{- define "ysync.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{- define "ysync.secretName" -}}
{{- default (include "ysync.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "ysync.trialSecretName" -}}
{{ include "ysync.fullname" . }}-trial
{{- end }}

{{/* A config value as the server parses it: integral numbers without a decimal point
     (YAML numbers reach templates as float64, and 67108864 would print as 6.7108864e+07). */}}
{{- define "ysync.settingValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop wait + drain + shutdown timeout + margin, so a
     rolling update never SIGKILLs a pod that is still draining or committing. */}}
{{- define "ysync.gracePeriod" -}}
{{- $drain := required "config.drain_seconds is needed to size terminationGracePeriodSeconds" .Values.config.drain_seconds }}
{{- $shutdown := required "config.shutdown_timeout is needed to size terminationGracePeriodSeconds" .Values.config.shutdown_timeout }}
{{- add .Values.preStopSeconds (ceil $drain) (ceil $shutdown) .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/* Refuse what cannot work, before anything reaches the cluster. */}}
{{- define "ysync.validate" -}}
{{- $store := include "ysync.storeType" . }}
{{- $redis := include "ysync.redisEnabled" . }}
{{- $pods := int (include "ysync.minReplicas" .) }}
{{- $many := or (gt $pods 1) .Values.autoscaling.enabled }}
{{- if and $many (eq $store "sqlite") }}
{{- fail "more than one replica (or autoscaling) needs store.type=postgresql: each pod would keep its own SQLite file and clients would see different documents" }}
{{- end }}
{{- if and $many (eq $store "memory") }}
{{- fail "more than one replica (or autoscaling) needs store.type=postgresql: with memory:// each pod keeps its own history" }}
{{- end }}
{{- if and $many (not $redis) }}
{{- fail "more than one replica (or autoscaling) needs Redis (redis.enabled with redis.url or existingSecret, or trial.redis.enabled): without it edits reach only the clients of the same pod" }}
{{- end }}
{{- if and (gt (int (default 1 .Values.config.workers)) 1) (not $redis) }}
{{- fail "config.workers > 1 needs Redis: each process would hold its own copy of a room" }}
{{- end }}
{{- if and $redis (eq $store "memory") }}
{{- fail "Redis needs a shared store (store.type=postgresql): with memory:// each pod keeps its own history" }}
{{- end }}
{{- if le (float64 .Values.config.shutdown_timeout) (float64 .Values.config.drain_seconds) }}
{{- fail "config.shutdown_timeout must be greater than config.drain_seconds: after the drain the pod still closes connections and commits" }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- if and (eq $store "postgresql") (not .Values.trial.postgresql.enabled) (not .Values.store.postgresql.url) }}
{{- fail "store.type=postgresql needs store.postgresql.url (or existingSecret with key store-url)" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.trial.redis.enabled) (not .Values.redis.url) }}
{{- fail "redis.enabled needs redis.url (or existingSecret with key redis-url)" }}
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") (not (get .Values.auth.jwt .Values.auth.jwt.keyType)) }}
{{- fail (printf "auth.mode=jwt with keyType %s needs auth.jwt.%s (or existingSecret)" .Values.auth.jwt.keyType .Values.auth.jwt.keyType) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The file of the JWT key mounted from the Secret (publicKey, jwks); empty otherwise. */}}
{{- define "ysync.jwtKeyFile" -}}
{{- if eq .Values.auth.mode "jwt" }}
{{- if eq .Values.auth.jwt.keyType "publicKey" }}jwt-public-key.pem{{ else if eq .Values.auth.jwt.keyType "jwks" }}jwks.json{{ end }}
{{- end }}
{{- end }}

{{/* YSYNC_* variables that come from a Secret, never from the ConfigMap. */}}
{{- define "ysync.secretEnv" -}}
{{- $store := include "ysync.storeType" . }}
{{- if eq $store "postgresql" }}
- name: YSYNC_STORE
  valueFrom:
    secretKeyRef:
      name: {{ ternary (include "ysync.trialSecretName" .) (include "ysync.secretName" .) .Values.trial.postgresql.enabled }}
      key: store-url
{{- end }}
{{- if include "ysync.redisEnabled" . }}
- name: YSYNC_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ ternary (include "ysync.trialSecretName" .) (include "ysync.secretName" .) .Values.trial.redis.enabled }}
      key: redis-url
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") (eq .Values.auth.jwt.keyType "secret") }}
- name: YSYNC_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "ysync.secretName" . }}
      key: jwt-secret
{{- end }}
{{- end }}
