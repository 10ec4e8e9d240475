{{- define "otlp2parquet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "otlp2parquet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "otlp2parquet.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "otlp2parquet.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "otlp2parquet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otlp2parquet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "otlp2parquet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "otlp2parquet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: opentelemetry-collector
{{- end -}}

{{/* The Collector configuration: the repository's collector-config.yaml with the sidecar port and compression. */}}
{{- define "otlp2parquet.collectorConfig" -}}
{{- if .Values.collector.alternateConfig -}}
{{ .Values.collector.alternateConfig }}
{{- else -}}
{{ .Files.Get "files/collector-config.yaml" | replace "127.0.0.1:4319" (printf "127.0.0.1:%d" (int .Values.sidecar.port)) | replace "compression: gzip" (printf "compression: %s" .Values.collector.exporterCompression) }}
{{- end -}}
{{- end -}}

{{/* The sidecar's TOML configuration: the user's settings plus what the chart decides. */}}
{{- define "otlp2parquet.sidecarConfig" -}}
{{- $config := deepCopy .Values.sidecar.config -}}
{{- $server := merge (dict "listen" (printf "0.0.0.0:%d" (int .Values.sidecar.port)) "reflection" true) (get $config "server" | default dict) -}}
{{- $writer := merge (dict "base_path" "/data") (get $config "writer" | default dict) -}}
{{- $wal := merge (dict "dir" "/data/wal") (get $config "wal" | default dict) -}}
{{- $telemetry := merge (dict "listen" (printf "0.0.0.0:%d" (int .Values.sidecar.metricsPort))) (get $config "telemetry" | default dict) -}}
{{- $_ := set $config "telemetry" $telemetry -}}
{{- $_ := set $config "server" $server -}}
{{- $_ := set $config "writer" $writer -}}
{{- $_ := set $config "wal" $wal -}}
{{ toToml $config }}
{{- end -}}

{{- define "otlp2parquet.sidecarImage" -}}
{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag | default .Chart.AppVersion }}
{{- end -}}
