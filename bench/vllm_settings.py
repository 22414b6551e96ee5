"""Where vLLM's speed goes between plain vLLM and mentee's configuration: one factor at a time, one run.

Run: ``.venv/bin/python bench/vllm_settings.py [--tokens 64] [--repeats 2] [--only NAME,...] [--out FILE]``
(the embedded Gemma 3 270M unless MENTEE_STUDENT_MODEL says otherwise). Nothing else should run beside it.

Each *server* is one vLLM start, adding one factor to the one before, from vLLM as its docs start it to mentee's
own command line and environment (``VLLMServer.command()``):

- ``plain``: mentee's command line less its LoRA and log-prob flags (``--dtype bfloat16 --max-model-len 2048
  --seed 0``), vLLM's defaults otherwise (a core reserved for the front end, torch.compile, prefix caching and
  chunked prefill) and a 4 GiB KV cache (vLLM's CPU default, 0.92 of the memory, does not start beside anything);
- ``reserved0``: ``VLLM_CPU_NUM_OF_RESERVED_CPU=0`` (mentee's ``vllm_cpu_reserved_cores``);
- ``kv1``: ``VLLM_CPU_KVCACHE_SPACE=1`` (``vllm_cpu_kvcache_gib``);
- ``maxlogprobs``: ``--max-logprobs 20``;
- ``eager``: ``--compilation-config '{"mode": 0}'``, torch.compile off, as vLLM's CPU platform does whenever LoRA
  is on: the step after it is then the LoRA path's own cost;
- ``lora``: ``--enable-lora`` with mentee's ``--max-lora-rank`` and ``--max-loras``: mentee's server until issue 21;
- ``targets``: ``--lora-target-modules`` mentee's ``lora_target_modules`` (LoRA layers only where mentee trains);
- ``segmented``: ``MENTEE_VLLM_SEGMENTED_LORA=1``, mentee's LoRA ops (``vllm_segmented_lora``): mentee's server
  since issue 21 (which also keeps one adapter slot more on CPU builds).

Each server is asked the same *requests*: the base model without log-probs (``none``), with the sampled token's
log-prob as mentee asks (``logprobs1``), on the last server with 20 alternatives (``logprobs20``), and on the LoRA
servers through a random rank-16 LoRA on every linear layer (``adapter``). Each at 1 request, 8 at once, and 8
arriving one every ``--stagger`` seconds like a chat service; every answer forced to ``--tokens`` tokens, greedy,
streamed. Figures: tokens/s (all tokens / wall time), time to first token, and per factor the ratio to the step
before. One JSON line per server as it finishes, and the whole table at the end (``--out``: JSON file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ADAPTER, CONCURRENT, log, prompts, random_adapter, stream_one

from mentee.server.core.config import Settings
from mentee.server.student.vllm_lora_ops import ENABLE_ENV as SEGMENTED_LORA_ENV

_DEFAULTS = {name: field.get_default(call_default_factory=True) for name, field in Settings.model_fields.items()}
TARGETS = list(_DEFAULTS["lora_target_modules"])
LORA_FLAGS = ["--max-lora-rank", str(_DEFAULTS["vllm_max_lora_rank"]), "--max-loras", str(_DEFAULTS["vllm_max_loras"])]
# (name, what it adds, extra arguments, extra environment): cumulative, plain vLLM first, mentee's server last.
SERVERS: list[tuple[str, str, list[str], dict[str, str]]] = [
    # vLLM's CPU default sizes the KV cache at 0.92 of the machine's memory and refuses to start when less is free
    # (20 of 23.5 GiB here): plain vLLM gets the 4 GiB that was the default before.
    ("plain", "vLLM's defaults, a 4 GiB KV cache", [], {"VLLM_CPU_KVCACHE_SPACE": "4"}),
    ("reserved0", "VLLM_CPU_NUM_OF_RESERVED_CPU=0", [], {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
    ("kv1", "VLLM_CPU_KVCACHE_SPACE=1", [], {"VLLM_CPU_KVCACHE_SPACE": "1"}),
    ("maxlogprobs", "--max-logprobs 20", ["--max-logprobs", "20"], {}),
    # What enabling LoRA turns off on CPU, on its own: the next step's cost is then the LoRA path alone.
    ("eager", "torch.compile off", ["--compilation-config", '{"mode": 0}'], {}),
    (
        "lora",
        f"--enable-lora {' '.join(LORA_FLAGS)}",
        ["--enable-lora", *LORA_FLAGS],
        {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"},
    ),
    # LoRA on the layers mentee trains only (its lora_target_modules), not the embedding or the 262k-row head.
    ("targets", "--lora-target-modules (mentee's)", ["--lora-target-modules", *TARGETS], {}),
    # mentee's LoRA ops (vllm_segmented_lora): one product per run of tokens with one adapter, not per token.
    ("segmented", "mentee's segmented LoRA ops", [], {SEGMENTED_LORA_ENV: "1"}),
]
# A step measured on its own: the steps after it do not carry it.
SIDE_STEPS = {"eager"}
# What mentee's command line adds to vLLM's defaults (VLLMServer.command()), taken out for the plain server.
MENTEE_FLAGS = ("--enable-lora", "--max-lora-rank", "--max-loras", "--lora-target-modules", "--max-logprobs")


def make_server(settings: Any, model_dir: str, args: list[str], env: dict[str, str]) -> Any:
    from mentee.server.student.vllm_server import VLLMServer

    class VariantServer(VLLMServer):
        """vLLM with only the arguments and environment of one step (mentee's own files and places kept)."""

        def command(self) -> list[str]:
            # mentee's own command line less the flags the steps add back one at a time, and less its extra args
            cmd = super().command()
            cmd = cmd[: len(cmd) - len(self.settings.vllm_extra_args)]
            values = {"--enable-lora": 0, "--lora-target-modules": len(self.settings.lora_target_modules)}
            for flag in MENTEE_FLAGS:
                at = cmd.index(flag)
                del cmd[at : at + 1 + values.get(flag, 1)]
            return cmd + args

        def environment(self) -> dict[str, str]:
            mentee = super().environment()
            for name in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_ALLOW_RUNTIME_LORA_UPDATING"):
                if os.environ.get(name) is None:
                    mentee.pop(name, None)  # vLLM's default unless this step sets it
            mentee[SEGMENTED_LORA_ENV] = "0"  # vLLM's own LoRA ops unless this step sets it
            return mentee | env

    return VariantServer(settings, model_dir)


def figures(url: str, model: str, texts: list[str], tokens: int, repeats: int, stagger: float, logprobs: int | None):
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=600)

    def one(prompt: str, delay: float = 0.0) -> tuple[float, float, int]:
        time.sleep(delay)
        return stream_one(client, model, prompt, tokens, logprobs)

    def run(size: int, gap: float) -> dict[str, float]:
        started = time.perf_counter()
        with ThreadPoolExecutor(size) as pool:
            results = list(pool.map(one, texts[:size], [i * gap for i in range(size)]))
        wall = time.perf_counter() - started
        return {
            "ttft_s": statistics.mean(r[0] for r in results),
            "latency_s": statistics.mean(r[1] for r in results),
            "tokens_per_s": sum(r[2] for r in results) / wall,
        }

    out: dict[str, Any] = {}
    for label, size, gap in (("1", 1, 0.0), (str(CONCURRENT), CONCURRENT, 0.0), ("staggered", CONCURRENT, stagger)):
        run(size, gap)  # warm-up
        runs = [run(size, gap) for _ in range(repeats)]
        out[label] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens written per answer (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per figure after a warm-up (default 2)")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between staggered arrivals (default 0.5)")
    parser.add_argument("--only", default="", help="comma-separated servers to start (default: all, in order)")
    parser.add_argument("--out", type=Path, help="write the whole table here as JSON")
    args = parser.parse_args()
    names = [name for name, *_ in SERVERS]
    only = [n for n in args.only.split(",") if n] or names
    unknown = sorted(set(only) - set(names))
    if unknown or args.tokens < 1 or args.repeats < 1 or args.stagger < 0:
        parser.error(f"--only takes {', '.join(names)} (got {', '.join(unknown)}); --tokens, --repeats >= 1")

    from mentee.server.core.config import load_settings
    from mentee.server.core.errors import StudentError
    from mentee.server.student.models import prepare_embedded_student

    settings = load_settings()
    model_dir = settings.student_model or str(prepare_embedded_student(settings.models_dir))
    with tempfile.TemporaryDirectory(prefix="mentee-vllm-settings-") as scratch:
        settings = load_settings(student_model=model_dir, home=Path(scratch) / "home")
        texts = prompts(settings, model_dir)
        adapter = random_adapter(model_dir, Path(scratch) / "adapter", list(settings.lora_target_modules))
        table: dict[str, Any] = {}
        args_so_far: list[str] = []
        env_so_far: dict[str, str] = {}
        for name, adds, extra_args, extra_env in SERVERS:
            step_args, step_env = args_so_far + extra_args, env_so_far | extra_env
            if name not in SIDE_STEPS:
                args_so_far, env_so_far = step_args, step_env
            if name not in only:
                continue
            log(f"server {name} (+ {adds})...")
            try:
                server = make_server(settings, model_dir, step_args, step_env).start()
            except StudentError as e:  # a step that does not start is a finding, not the end of the run
                table[name] = {"adds": adds, "error": str(e)[-2000:]}
                log(f"{name} did not start: {e}")
                continue
            try:
                requests: dict[str, tuple[str, int | None]] = {"none": (settings.student_served_name, None)}
                requests["logprobs1"] = (settings.student_served_name, 1)
                if name == SERVERS[-1][0]:  # 20 alternatives per token: once, on mentee's own server
                    requests["logprobs20"] = (settings.student_served_name, 20)
                if "--enable-lora" in step_args:
                    import httpx

                    httpx.post(
                        f"{server.url}/v1/load_lora_adapter",
                        json={"lora_name": ADAPTER, "lora_path": str(adapter)},
                        timeout=120,
                    ).raise_for_status()
                    requests["adapter"] = (ADAPTER, 1)
                row: dict[str, Any] = {"adds": adds, "startup_s": round(server.startup_seconds or 0, 1)}
                for request, (model, logprobs) in requests.items():
                    row[request] = figures(server.url, model, texts, args.tokens, args.repeats, args.stagger, logprobs)
                    log(f"{name} / {request}: {json.dumps(row[request])}")
            finally:
                server.stop()
            table[name] = row
            print(json.dumps({"server": name, **row}), flush=True)
    summary = {
        "bench": "vllm_settings",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": model_dir,
        "answer_tokens": args.tokens,
        "servers": table,
        "factors": factors(table),
    }
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


def factors(table: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each server's tokens/s (logprobs1 requests, as mentee asks) over the server before it, and each request
    kind's over ``none`` on the same server: what the step costs (below 1) or gains."""
    out: dict[str, dict[str, float]] = {}
    previous = None
    for name, row in table.items():
        if "error" in row:
            continue
        for kind in ("none", "logprobs1", "logprobs20", "adapter"):
            if kind not in row:
                continue
            for size, figure in row[kind].items():
                if kind != "none":
                    ratio = figure["tokens_per_s"] / row["none"][size]["tokens_per_s"]
                    out.setdefault(f"{name}: {kind} over none", {})[size] = round(ratio, 2)
                if previous is not None and kind == "logprobs1":
                    ratio = figure["tokens_per_s"] / previous["logprobs1"][size]["tokens_per_s"]
                    out.setdefault(f"{name} over the server before", {})[size] = round(ratio, 2)
        previous = row
    return out


if __name__ == "__main__":
    main()
