{{/* The otlp2parquet container: the same spec in native (init container) and extraContainers mode. */}}
{{- define "otlp2parquet.sidecarContainer" -}}
name: otlp2parquet
image: {{ include "otlp2parquet.sidecarImage" . | quote }}
imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
args: ["serve", "--config", "/conf/otlp2parquet/otlp2parquet.toml"]
ports:
  - {name: sidecar-grpc, containerPort: {{ .Values.sidecar.port }}, protocol: TCP}
  - {name: sidecar-metrics, containerPort: {{ .Values.sidecar.metricsPort }}, protocol: TCP}
env:
  # The pod name is the writer id: stable for a StatefulSet, unique per sidecar sharing a catalog.
  - name: OTLP2PARQUET_WRITER__WRITER_ID
    valueFrom:
      fieldRef: {fieldPath: metadata.name}
  {{- range .Values.sidecar.secretEnv }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef: {name: {{ .secretName }}, key: {{ .key }}}
  {{- end }}
  {{- with .Values.sidecar.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
startupProbe:
  grpc: {port: {{ .Values.sidecar.port }}, service: ""}
  periodSeconds: {{ .Values.sidecar.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.sidecar.probes.startup.failureThreshold }}
readinessProbe:
  grpc: {port: {{ .Values.sidecar.port }}, service: ""}
  periodSeconds: {{ .Values.sidecar.probes.readiness.periodSeconds }}
  failureThreshold: {{ .Values.sidecar.probes.readiness.failureThreshold }}
livenessProbe:
  httpGet: {path: /healthz, port: sidecar-metrics}
  periodSeconds: {{ .Values.sidecar.probes.liveness.periodSeconds }}
  failureThreshold: {{ .Values.sidecar.probes.liveness.failureThreshold }}
resources:
  {{- toYaml .Values.sidecar.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.sidecar.securityContext | nindent 2 }}
volumeMounts:
  - {name: config, mountPath: /conf/otlp2parquet/otlp2parquet.toml, subPath: otlp2parquet.toml}
  - {name: data, mountPath: /data}
  - {name: tmp, mountPath: /tmp}
{{- end -}}
