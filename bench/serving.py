"""Serving: the student through vLLM against plain transformers ``generate``, same model, same prompts, one run.

Run: ``.venv/bin/python bench/serving.py [--tokens 64] [--repeats 3]`` (the embedded Gemma 3 270M unless
MENTEE_STUDENT_MODEL says otherwise). The prompts are 8 NQ questions in the student's prompt format; every answer
is forced to ``--tokens`` tokens (vLLM: ``min_tokens`` + ``ignore_eos``; transformers: ``min_new_tokens``), greedy.

- vLLM: mentee's own vLLM server (as served), streamed completions through the OpenAI client with the sampled
  token's log-prob (as mentee asks); 1 request alone, then 8 at once (threads); the base model, then through a
  random rank-16 LoRA on mentee's target modules (what the student answers with after a round);
- transformers: ``AutoModelForCausalLM.generate`` in this process after vLLM is stopped (the two never share the
  cores); 1 prompt (streamed with ``TextIteratorStreamer`` for the first token), then the 8 as one left-padded
  batch (its first token: a 1-token generate of the batch).

Figures per engine and concurrency: time to first token (mean over requests), tokens/s (all tokens written / wall
time), and the ratios vLLM / transformers (plain transformers without an adapter in both). Median of ``--repeats``
after one warm-up each. One final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NQ = REPO / "data" / "nq-open-dev.jsonl"
CONCURRENT = 8
ADAPTER = "bench-lora"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prompts(settings: Any, model_dir: str) -> list[str]:
    from mentee.server.student.prompting import ChatMessage, detect_prompt_format, prompt_format

    rows = [json.loads(line) for line in NQ.read_text().splitlines()[:CONCURRENT]]
    chosen = settings.prompt_format
    fmt = prompt_format(chosen) if chosen != "auto" else detect_prompt_format(Path(model_dir))
    built = [fmt.build([ChatMessage("user", r["question"])]) for r in rows]
    if any(b.endpoint != "completions" for b in built):
        raise SystemExit("bench/serving.py compares raw completions: use a student with the 'qa' prompt format")
    return [b.prompt for b in built]


def stream_one(client: Any, model: str, prompt: str, tokens: int, logprobs: int | None = None):
    """One streamed completion forced to ``tokens`` tokens, greedy: (time to first token, latency, tokens)."""
    started = time.perf_counter()
    first, count = None, 0
    options: dict[str, Any] = {"logprobs": logprobs} if logprobs is not None else {}
    stream = client.completions.create(
        model=model,
        prompt=prompt,
        max_tokens=tokens,
        temperature=0.0,
        stream=True,
        extra_body={"min_tokens": tokens, "ignore_eos": True},
        stream_options={"include_usage": True},
        **options,
    )
    for event in stream:
        if event.choices and event.choices[0].text and first is None:
            first = time.perf_counter()
        if event.usage is not None:
            count = event.usage.completion_tokens
    end = time.perf_counter()
    return (first or end) - started, end - started, count


def random_adapter(model_dir: str, folder: Path, target_modules: list[str]) -> Path:
    """A rank-16 LoRA with random (non-zero) weights on the student's linear layers: what a round serves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=target_modules, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: an untrained adapter would skip nothing and change nothing
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 1e-3)
    peft_model.save_pretrained(folder)
    return folder


def vllm_figures(settings: Any, texts: list[str], tokens: int, repeats: int, adapter: Path) -> dict[str, Any]:
    import openai

    from mentee.server.student.client import Student

    with Student(settings) as student:
        client = openai.OpenAI(base_url=f"{student.url}/v1", api_key="not-needed", max_retries=0, timeout=600)
        model = settings.student_served_name

        def one(prompt: str) -> tuple[float, float, int]:
            return stream_one(client, model, prompt, tokens, logprobs=1)  # the sampled token's, as mentee asks

        def batch(size: int) -> dict[str, float]:
            started = time.perf_counter()
            with ThreadPoolExecutor(size) as pool:
                results = list(pool.map(one, texts[:size]))
            wall = time.perf_counter() - started
            return {
                "ttft_s": statistics.mean(r[0] for r in results),
                "tokens_per_s": sum(r[2] for r in results) / wall,
                "tokens": sum(r[2] for r in results),
            }

        figures = {"base": measure(batch, repeats, "vllm")}
        student.load_adapter(ADAPTER, str(adapter))
        model = ADAPTER  # the same requests through a learned adapter, as the student answers after a round
        figures["adapter"] = measure(batch, repeats, "vllm through an adapter")
        return figures


def transformers_figures(model_dir: str, texts: list[str], tokens: int, repeats: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if on_gpu else torch.float32)
    model = model.to(device).eval()
    forced = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False}

    def batch(size: int) -> dict[str, float]:
        inputs = tokenizer(texts[:size], return_tensors="pt", padding=True).to(device)
        if size == 1:  # stream the single answer to see its first token
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
            started = time.perf_counter()
            worker = threading.Thread(target=model.generate, kwargs={**inputs, **forced, "streamer": streamer})
            worker.start()
            first = None
            for piece in streamer:
                if piece and first is None:
                    first = time.perf_counter()
            worker.join()
            wall = time.perf_counter() - started
            return {"ttft_s": (first or started + wall) - started, "tokens_per_s": tokens / wall, "tokens": tokens}
        with torch.no_grad():
            started = time.perf_counter()
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
            ttft = time.perf_counter() - started
            started = time.perf_counter()
            out = model.generate(**inputs, **forced)
            wall = time.perf_counter() - started
        written = int((out.shape[1] - inputs["input_ids"].shape[1]) * size)
        return {"ttft_s": ttft, "tokens_per_s": written / wall, "tokens": written}

    with torch.no_grad():
        return measure(batch, repeats, "transformers")


def measure(batch: Any, repeats: int, engine: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for size in (1, CONCURRENT):
        batch(size)  # warm-up: compiles, caches, first allocations
        runs = [batch(size) for _ in range(repeats)]
        figures[str(size)] = {
            "ttft_s": round(statistics.median(r["ttft_s"] for r in runs), 3),
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in runs), 1),
            "tokens": runs[0]["tokens"],
        }
        log(f"{engine}, {size} at once: {figures[str(size)]}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens written per answer (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure after a warm-up (default 3)")
    args = parser.parse_args()
    if args.tokens < 1 or args.repeats < 1:
        parser.error(f"--tokens and --repeats must be at least 1, got {args.tokens} and {args.repeats}")

    from mentee.server.core.config import load_settings
    from mentee.server.student.models import prepare_embedded_student

    settings = load_settings()
    model_dir = settings.student_model or str(prepare_embedded_student(settings.models_dir))
    settings = load_settings(student_model=model_dir)
    texts = prompts(settings, model_dir)
    with tempfile.TemporaryDirectory(prefix="mentee-serving-") as scratch:
        adapter = random_adapter(model_dir, Path(scratch) / "adapter", list(settings.lora_target_modules))
        log("vLLM (mentee's student server)...")
        vllm = vllm_figures(settings, texts, args.tokens, args.repeats, adapter)
    log("plain transformers generate...")
    plain = transformers_figures(model_dir, texts, args.tokens, args.repeats)
    ratios = {
        f"{route}, {size}": {
            "tokens_per_s_vllm_over_transformers": round(figures["tokens_per_s"] / plain[size]["tokens_per_s"], 2),
            "ttft_transformers_over_vllm": round(plain[size]["ttft_s"] / figures["ttft_s"], 2),
        }
        for route, by_size in vllm.items()
        for size, figures in by_size.items()
    }
    print(
        json.dumps(
            {
                "bench": "serving",
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "model": settings.student_model,
                "answer_tokens": args.tokens,
                "vllm": vllm,
                "transformers": plain,
                "ratios": ratios,
            }
        )
    )


if __name__ == "__main__":
    main()
