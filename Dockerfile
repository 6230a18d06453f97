# syntax=docker/dockerfile:1
# Mirada service image. GPU by default: NVIDIA's CUDA runtime image, TensorRT from NVIDIA's Python wheels, torch's
# CUDA build. CPU variant: docker-compose.yml's `mirada-cpu` service passes BASE_IMAGE=ubuntu:22.04,
# TORCH_INDEX=https://download.pytorch.org/whl/cpu and TENSORRT="" (ONNX Runtime on the CPU).
#
#   docker build -t mirada .
#   docker run --gpus all -p 8000:8000 -e MIRADA_API_KEY=... -v mirada-cache:/cache mirada
#
# The TensorRT engine is built on the first start (a minute or two) into /cache, a volume, and reused after.

ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# --- build: a virtual environment with the pinned dependencies and Mirada --------------------------------------
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX=""
ARG TENSORRT="tensorrt-cu12>=10,<11"
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
# torch==2.13.0 from PyPI is its CUDA build; TORCH_INDEX points the CPU variant at the CPU wheels instead.
RUN if [ -n "$TORCH_INDEX" ]; then pip install torch==2.13.0 --index-url "$TORCH_INDEX"; fi \
 && pip install -r requirements.lock \
 && if [ -n "$TENSORRT" ]; then pip install "$TENSORRT"; fi
COPY engine engine
COPY server server
RUN pip install --no-deps .

# --- runtime: the environment, the demo page, a non-root user ---------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libgl1 libglib2.0-0 \
 && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY web /app/web
RUN useradd --create-home --uid 10001 mirada && mkdir -p /cache && chown mirada:mirada /cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MIRADA_HOST=0.0.0.0 \
    MIRADA_PORT=8000 \
    MIRADA_WEB_DIR=/app/web \
    MIRADA_CACHE_DIR=/cache \
    MIRADA_REQUIRE_WEIGHTS=true \
    HOME=/home/mirada
VOLUME ["/cache"]
USER mirada
WORKDIR /home/mirada
EXPOSE 8000
# Ready once the model is loaded (the first start builds the TensorRT engine: give it time).
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3.11", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('MIRADA_PORT', '8000')}/readyz\", timeout=4)"]
# Listening on 0.0.0.0 needs MIRADA_API_KEY: without it the service refuses to start and says so.
CMD ["mirada", "serve"]
