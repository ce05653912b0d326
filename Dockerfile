# ysync container image: `docker build -t ysync:0.1.0 .` (see docs/deploy.md).
# The Helm chart's default image (helm/ysync/values.yaml: image.repository, tag = appVersion)
# is this one, pushed to your registry.

# -- stage 1: wheels for ysync and every dependency ------------------------------------------
FROM python:3.11.13-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- stage 2: the runtime, with no compiler, pip cache or source tree ------------------------
FROM python:3.11.13-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --gid 10001 ysync \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin ysync \
    && mkdir /data \
    && chown 10001:10001 /data
# Documents live in /data (mount a volume there); Python writes no bytecode next to the
# installed code, so the root filesystem can be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    YSYNC_STORE=sqlite:////data/ysync.db \
    YSYNC_LOG_FORMAT=json
WORKDIR /data
USER 10001:10001
EXPOSE 1234
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('YSYNC_PORT', '1234') + '/healthz', timeout=2)"]
# Every other setting comes from YSYNC_* variables (the chart's ConfigMap and Secret).
CMD ["ysync", "serve", "--host", "0.0.0.0"]
