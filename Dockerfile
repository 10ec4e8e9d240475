# The otlp2parquet sidecar image: slim Python, runtime dependencies only, non-root, /data as the volume.
#   docker build -t otlp2parquet .
#   docker run -p 4319:4319 -v otlp2parquet-data:/data otlp2parquet
FROM python:3.11-slim AS build
# C and C++ compilers for the native decoding path (server/otlp2parquet/convert/_fastpb.c) and the threaded Parquet
# encoder (server/otlp2parquet/writer/_encode.cpp, built against the pyarrow wheel); the runtime image needs none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY server ./server
# Wheels for the package and its runtime dependencies only (no test extras).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --gid 10001 otlp2parquet && useradd --uid 10001 --gid 10001 --no-create-home otlp2parquet \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001:10001
ENV PYTHONUNBUFFERED=1 \
    OTLP2PARQUET_BASE_PATH=/data \
    OTLP2PARQUET_LISTEN=0.0.0.0:4319
VOLUME /data
EXPOSE 4319
ENTRYPOINT ["otlp2parquet"]
CMD ["serve"]
