# syntax=docker/dockerfile:1
# The recursum REST service on one NVIDIA GPU.
#
#   docker build -t recursum:0.1.0 .
#   docker run --gpus 1 -p 8000:8000 -e RECURSUM_API_KEYS=ops:secret:summarize+admin recursum:0.1.0
#
# Configuration is environment variables only (service/settings.py); nothing is read from files.
# The default model is pulled at build time into $RECURSUM_HOME/models. To keep it out of the image
# instead, build with `--build-arg PULL_MODEL=0` and mount a volume at $RECURSUM_HOME: the first
# `recursum serve` pulls the model into it (README.md, "Deploy").

# torch==2.13.0 from PyPI is built against CUDA 13.0 and brings the CUDA user-space libraries as
# pip wheels (nvidia-cublas, nvidia-cudnn-cu13, ...). So the `-base` flavour is enough: it adds
# libcudart and the NVIDIA_REQUIRE_CUDA label that makes the container toolkit refuse a host driver
# too old for CUDA 13 with a clear message; `-runtime` would ship cuBLAS and friends a second time
# (~2 GB). Keep the CUDA major here equal to torch's when the torch pin moves.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG PULL_MODEL=1
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RECURSUM_HOME=/opt/recursum
# Ubuntu 24.04's python3.12 satisfies requires-python >= 3.11. Versions are not pinned: the base image
# tag fixes the release, and pinned Ubuntu point versions disappear from the archive within weeks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.12 -m venv /opt/venv
WORKDIR /src
# torch alone first: the largest layer, rebuilt only when the pin changes. On PyPI (no local index
# here, unlike dev/CI) the pin resolves to the CUDA build.
RUN pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
COPY clients ./clients
COPY schemas ./schemas
# A regular (not editable) install: the runtime stage copies /opt/venv and never sees /src. The
# versions are pyproject.toml's (torch pinned there too, so this does not replace the CUDA build).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[service,gpu,postgres]"
# Download, verify (sha256) and convert the default model into $RECURSUM_HOME/models.
RUN mkdir -p "$RECURSUM_HOME" \
    && if [ "$PULL_MODEL" = "1" ]; then recursum models pull; fi

FROM ${CUDA_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin recursum
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/recursum /opt/recursum
# The model stays root-owned (read-only to the service); what the service writes under
# $RECURSUM_HOME (node cache, GGUF conversions, the SQLite file when no PostgreSQL URL is set) is
# the user's. Kubernetes runs with a read-only root filesystem and mounts volumes on these paths.
RUN mkdir -p /opt/recursum/cache /opt/recursum/converted \
    && chown recursum:recursum /opt/recursum /opt/recursum/cache /opt/recursum/converted
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECURSUM_HOME=/opt/recursum
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/recursum
EXPOSE 8000
# Liveness only (the HTTP server answers); model readiness is /readyz, which orchestrators probe.
# No curl in the image: the venv's Python does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# `recursum` is the entrypoint and `serve` the default command, so the same image runs other
# subcommands (`docker run IMAGE models list`; the training Job's `train levels ...`).
ENTRYPOINT ["recursum"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
