{{/* Name helpers (Helm's usual shape). */}}
{{- define "llmgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llmgw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "llmgw.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "llmgw.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "llmgw.labels" -}}
app.kubernetes.io/part-of: {{ include "llmgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "llmgw.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "llmgw.controllerName" -}}
{{ include "llmgw.fullname" . }}-controller
{{- end }}

{{- define "llmgw.serviceAccountName" -}}
{{ .Values.serviceAccount.name | default (include "llmgw.controllerName" .) }}
{{- end }}

{{- define "llmgw.gatewayName" -}}
{{ .Values.controller.gateway.name | default (include "llmgw.fullname" .) }}
{{- end }}

{{- define "llmgw.usersSecret" -}}
{{ .Values.users.existingSecret | default (printf "%s-users" (include "llmgw.fullname" .)) }}
{{- end }}

{{/* The Secret with the route config and the mirror file (seed 004). */}}
{{- define "llmgw.trafficSecret" -}}
{{ .Values.controller.traffic.existingSecret | default (printf "%s-traffic" (include "llmgw.fullname" .)) }}
{{- end }}

{{/* The chart deploys Redis only when no external host is given. */}}
{{- define "llmgw.bundledRedis" -}}
{{- if and .Values.metadata.redis.enabled (not .Values.gatewayPlugin.dependencies.redis.host) }}true{{ end }}
{{- end }}

{{/* REDIS_HOST: the external host, the chart's Redis, or "" (none). */}}
{{- define "llmgw.redisHost" -}}
{{- if .Values.gatewayPlugin.dependencies.redis.host }}
{{- .Values.gatewayPlugin.dependencies.redis.host }}
{{- else if include "llmgw.bundledRedis" . }}
{{- printf "%s-redis-master" (include "llmgw.fullname" .) }}
{{- end }}
{{- end }}

{{/* The smallest of the positive numbers in a list; 0 when none is. */}}
{{- define "llmgw.minSet" -}}
{{- $min := 0 }}
{{- range . }}
{{- $v := int . }}
{{- if and (gt $v 0) (or (eq $min 0) (lt $v $min)) }}{{ $min = $v }}{{ end }}
{{- end }}
{{- $min }}
{{- end }}

{{/* ceil(value / processes): an AIBrix per-proxy number as a per-process
     one (dict "v" value "p" processes). */}}
{{- define "llmgw.perProcess" -}}
{{- $v := int .v }}{{ $p := int .p }}
{{- div (add $v (sub $p 1)) $p }}
{{- end }}

{{/* .base with .over's keys set on top, false and 0 included (sprig's
     merge treats those as unset). One level deep. */}}
{{- define "llmgw.overlay" -}}
{{- $out := deepCopy (.base | default dict) }}
{{- range $k, $v := (.over | default dict) }}{{ $_ := set $out $k $v }}{{ end }}
{{- toYaml $out }}
{{- end }}

{{/* A pool with every default filled in: dict "root" $ "pool" $pool. */}}
{{- define "llmgw.pool" -}}
{{- $root := .root }}
{{- $w := $root.Values.worker }}
{{- $gp := $root.Values.gatewayPlugin }}
{{- if not (and (kindIs "map" .pool) .pool.name) }}
{{- fail "workerPools: every pool needs a name" }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .pool.name)) }}
{{- fail (printf "workerPools: pool name %q is not a DNS label" (toString .pool.name)) }}
{{- end }}
{{- if lt (int (.pool.processesPerPod | default $w.processesPerPod)) 1 }}
{{- fail (printf "workerPools[%s]: processesPerPod must be at least 1" .pool.name) }}
{{- end }}
{{- $replicas := int $gp.replicaCount }}
{{- $envoy := int ($root.Values.gateway.envoyProxy.replicas | default 0) }}
{{- if gt $envoy $replicas }}{{ $replicas = $envoy }}{{ end }}
{{- $p := dict
      "name" .pool.name
      "replicas" (hasKey .pool "replicas" | ternary .pool.replicas $replicas)
      "resources" (.pool.resources | default $gp.container.resources)
      "processesPerPod" (int (.pool.processesPerPod | default $w.processesPerPod))
      "migrateAcceptQueue" (hasKey .pool "migrateAcceptQueue" | ternary .pool.migrateAcceptQueue $w.migrateAcceptQueue)
      "envs" (merge (dict) (.pool.envs | default dict) ($gp.container.envs | default dict))
      "extraArgs" (concat ($w.extraArgs | default list) (.pool.extraArgs | default list))
      "service" (include "llmgw.overlay" (dict "base" $w.service "over" .pool.service) | fromYaml)
      "hpa" (include "llmgw.overlay" (dict "base" $w.hpa "over" .pool.hpa) | fromYaml)
      "pdb" (include "llmgw.overlay" (dict "base" $w.pdb "over" .pool.pdb) | fromYaml)
      "nodeSelector" (.pool.nodeSelector | default $w.nodeSelector)
      "tolerations" (.pool.tolerations | default $w.tolerations)
      "affinity" (.pool.affinity | default $w.affinity) }}
{{- toYaml $p }}
{{- end }}

{{/* The worker's arguments for a pool (dict "root" $ "pool" <filled pool>):
     the AIBrix gateway.* values become flags (README, "AIBrix values"). */}}
{{- define "llmgw.workerArgs" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $P := int .pool.processesPerPod }}
{{- $ctl := printf "%s.%s.svc" (include "llmgw.controllerName" $root) $root.Release.Namespace }}
{{- $ctp := $v.gateway.clientTrafficPolicy }}
{{- $cb := $v.gateway.backendTrafficPolicy.circuitBreaker }}
{{- $epp := $v.gateway.envoyPatchPolicy }}
- --port={{ $v.worker.port }}
- --controller-pub=tcp://{{ $ctl }}:{{ $v.controller.ports.pub }}
- --controller-rep=tcp://{{ $ctl }}:{{ $v.controller.ports.rep }}
- --controller-pull=tcp://{{ $ctl }}:{{ $v.controller.ports.pull }}
- --drain-timeout={{ $v.worker.drainTimeout }}
- --log-level={{ $v.worker.logLevel }}
{{- with $ctp.connection.bufferLimit }}
- --max-body-bytes={{ int . }}
{{- end }}
{{- with $ctp.connection.connectionLimit.value }}
- --conn-limit={{ include "llmgw.perProcess" (dict "v" . "p" $P) }}
{{- end }}
{{- $conns := include "llmgw.minSet" (list $cb.maxConnections $epp.circuitBreakers.maxConnections) | int }}
{{- if gt $conns 0 }}
- --max-host-conns={{ include "llmgw.perProcess" (dict "v" $conns "p" $P) }}
{{- end }}
{{- $par := include "llmgw.minSet" (list $cb.maxParallelRequests $epp.circuitBreakers.maxRequests) | int }}
{{- if gt $par 0 }}
- --max-parallel-requests={{ include "llmgw.perProcess" (dict "v" $par "p" $P) }}
{{- end }}
{{- $pend := include "llmgw.minSet" (list $cb.maxPendingRequests $epp.circuitBreakers.maxPendingRequests) | int }}
{{- if gt $pend 0 }}
- --max-pending-requests={{ include "llmgw.perProcess" (dict "v" $pend "p" $P) }}
{{- end }}
{{- with $cb.maxParallelRetries }}
- --max-parallel-retries={{ include "llmgw.perProcess" (dict "v" . "p" $P) }}
{{- end }}
{{- with $epp.route.timeout }}
- --upstream-timeout={{ . }}
{{- end }}
{{- with $epp.route.connectTimeout }}
- --connect-timeout={{ . }}
{{- end }}
{{- with $epp.route.idleTimeout }}
- --idle-timeout={{ . }}
{{- end }}
{{- if and (not (include "llmgw.redisHost" $root)) (not (hasKey .pool.envs "REDIS_HOST")) }}
- --redis-host=
{{- end }}
{{- range .pool.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
