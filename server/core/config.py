"""mentee's settings: one object, read from ``MENTEE_*`` environment variables and an optional TOML file.

Precedence, highest first: values passed in code, environment variables, the TOML file (``--config`` or
``MENTEE_CONFIG``), then the defaults below. Every field has a help text; a bad value raises
:class:`~mentee.server.core.errors.ConfigError` naming the setting and the value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError
from .redaction import BUILTIN_KINDS, DEFAULT_OTHER_PHONE_REGIONS, check_phone_region

ENV_PREFIX = "MENTEE_"
CONFIG_FILE_ENV = "MENTEE_CONFIG"
# vLLM accepts only these LoRA ranks (vllm/config/lora.py).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# The longest question, in characters: the API, the router and the memory hold every question to one limit
# (question_max_chars); parts used on their own (a Memory, a Student) take this as their default.
QUESTION_MAX_CHARS = 2000
# Tokens of a question the memory embeds. Real questions are short (17,610 of the shipped data: p50 13 tokens, p99
# 44, 26 over 64), and a transformer's cost grows with the length: MiniLM took 47 ms for a 2,000-character
# gibberish question at its own limit of 256 tokens against 9 ms for a normal one; at 64, 17 ms.
EMBED_MAX_TOKENS = 64


class Settings(BaseSettings):
    """Everything mentee can be told. Environment: ``MENTEE_<FIELD>`` (e.g. ``MENTEE_VLLM_PORT=8100``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=True, toml_file=None
    )

    home: Path = Field(
        default=Path("~/.cache/mentee"),
        description="mentee's home folder: prepared models, vLLM's caches and sockets, logs.",
    )
    student_model: str = Field(
        default="",
        description=(
            "The student model: empty for the embedded Gemma 3 270M (prepared once into the home folder), or the "
            "path of any Hugging Face model folder, or a model name the vLLM server can load."
        ),
    )
    student_url: str = Field(
        default="",
        description=(
            "Base URL of an already running vLLM OpenAI-compatible server (e.g. http://127.0.0.1:8000). Empty: "
            "mentee starts and supervises its own vLLM server."
        ),
    )
    student_api_key: SecretStr | None = Field(
        default=None, description="API key of the vLLM server at student_url, if it requires one."
    )
    student_served_name: str = Field(
        default="student", min_length=1, description="The model name the student is served under in vLLM."
    )
    prompt_format: Literal["auto", "qa", "chat"] = Field(
        default="auto",
        description=(
            "How questions are put to the student: 'qa' (few-shot Q:/A: lines, for base models), 'chat' (the "
            "model's chat template), or 'auto': 'chat' if the model has a chat template, else 'qa'."
        ),
    )
    max_tokens: int = Field(default=64, ge=1, le=8192, description="Most tokens the student writes per answer.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    top_logprobs: int = Field(
        default=1,
        ge=0,
        le=20,
        description="Alternatives whose log-probabilities are returned per answer token.",
    )
    request_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one request to the student.")
    vllm_host: str = Field(default="127.0.0.1", min_length=1, description="Address mentee's vLLM server binds.")
    vllm_port: int = Field(default=0, ge=0, le=65535, description="Port of mentee's vLLM server; 0 picks a free one.")
    vllm_max_lora_rank: int = Field(
        default=16, description=f"Highest LoRA rank vLLM accepts for adapters; one of {VLLM_LORA_RANKS}."
    )
    vllm_max_loras: int = Field(
        default=8,
        ge=1,
        le=64,
        description=(
            "LoRA adapters vLLM serves at once (a slot each; on a CPU a request's cost does not grow with them: the "
            "LoRA ops gather each token's adapter by index; CPU builds get one slot more, kept empty for the base "
            "model)."
        ),
    )
    vllm_max_model_len: int = Field(
        default=2048, ge=128, le=1_048_576, description="Context length (prompt + answer) vLLM serves."
    )
    vllm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="bfloat16", description="Weight dtype vLLM runs the student in."
    )
    vllm_cpu_kvcache_gib: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="KV-cache size in GiB on CPU builds of vLLM (VLLM_CPU_KVCACHE_SPACE).",
    )
    vllm_cpu_reserved_cores: int = Field(
        default=0,
        ge=0,
        le=1024,
        description=(
            "CPU cores vLLM's CPU build keeps free of model compute (VLLM_CPU_NUM_OF_RESERVED_CPU); 0 lets the "
            "model use every core (one 64-token answer: 11.5 tok/s against 8.0 with vLLM's default of 1 on 2 cores)."
        ),
    )
    vllm_segmented_lora: bool = Field(
        default=True,
        description=(
            "On CPU builds of vLLM, apply adapters with mentee's LoRA ops (one matrix product per run of tokens "
            "with one adapter) instead of vLLM's (a copy of the adapter's weights for every token); same answers."
        ),
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.5, gt=0, le=1, description="Share of GPU memory vLLM may use on CUDA builds."
    )
    vllm_extra_args: list[str] = Field(
        default_factory=list, description="More command-line arguments for vLLM's OpenAI server, verbatim."
    )
    vllm_startup_timeout_s: float = Field(
        default=900.0, gt=0, description="How long to wait for mentee's vLLM server to become healthy."
    )
    vllm_max_restarts: int = Field(
        default=5,
        ge=0,
        le=1000,
        description=(
            "Restarts of mentee's own vLLM server after it dies, at most this many within an hour (0: never); "
            "requests meanwhile get a clear 503 (or a stream's error event)."
        ),
    )

    memory_embedder: str = Field(
        default="",
        description=(
            "Sentence-transformers model folder for the memory's embeddings; empty for the packaged "
            "all-MiniLM-L6-v2. Changing it re-embeds the memory."
        ),
    )
    memory_embed_cache: int = Field(
        default=4096,
        ge=0,
        le=1_000_000,
        description=(
            "Questions whose vectors the memory keeps (most recently used, ~1.5 KB each; 0: none): a question asked "
            "again word for word is not embedded again, which is most of a memory hit's CPU."
        ),
    )
    memory_embed_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description=(
            "How the memory's embedder runs: 'onnx' exports it once (under memory_embed_onnx_dir) and runs it with "
            "ONNX Runtime, the same vectors in about half torch's time and a quarter of its CPU on 2 cores; 'torch' "
            "runs sentence-transformers as is. A model the export cannot reproduce stays on torch (logged)."
        ),
    )
    memory_embed_onnx_dir: str = Field(
        default="",
        description=(
            "Folder of the exported ONNX embedders (one file per model, ~90 MB); empty: <home>/models/embedder-onnx."
        ),
    )
    memory_embed_max_tokens: int = Field(
        default=EMBED_MAX_TOKENS,
        ge=8,
        le=8192,
        description=(
            "Longest part of a question (tokens) the memory embeds: a longer one is embedded by its first tokens, "
            "so a 2,000-character question costs about what a normal one does (real questions: p99 44 tokens). "
            "Changing it re-embeds the memory."
        ),
    )
    chroma_url: str = Field(
        default="",
        description=(
            "URL of a Chroma server (e.g. http://127.0.0.1:8001) shared by several processes; empty keeps the "
            "memory in an embedded Chroma under the home folder (one process only)."
        ),
    )
    memory_collection: str = Field(
        default="mentee-memory",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,40}[A-Za-z0-9]$",
        description="Name of the Chroma collection holding the memory (the embedder's id is appended).",
    )
    memory_namespace: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Namespace of remembered items, so one deployment keeps several tenants' memories apart.",
    )
    memory_max_distance: float = Field(
        default=0.20,
        gt=0,
        le=2,
        description=(
            "Largest cosine distance at which a remembered question can answer a new one (it must also pass "
            "verification). Measured on data/near-duplicate-pairs.jsonl: verified hits stop growing past 0.2."
        ),
    )
    memory_duplicate_distance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Cosine distance under which a remembered (and verified-same) question is updated, not added.",
    )
    memory_candidates: int = Field(
        default=5, ge=1, le=100, description="Nearest remembered questions checked for a verified hit."
    )
    memory_verifier: Literal["learned", "rules"] = Field(
        default="learned",
        description=(
            "What decides that a near remembered question asks the same as a new one: 'learned' (vetoes for other "
            "numbers, a negation, another question word, credit or name, then a model over the rules' features and "
            "the distance, trained on the tuning split of data/near-duplicate-pairs-clean.jsonl; docs/benchmarks.md: "
            "0.83 of held-back paraphrases served against the rules' 0.63, at the same 0.077 false hits) or 'rules' "
            "(every hand-written rule must pass)."
        ),
    )
    memory_verifier_file: str = Field(
        default="",
        description=(
            "A verifier model written by bench/train_verifier.py, for memory_verifier = 'learned'; empty for the "
            "packaged one."
        ),
    )

    teacher_url: str = Field(
        default="",
        description="Base URL of an OpenAI-compatible teacher (OpenAI, a vLLM or Ollama server, …).",
    )
    teacher_model: str = Field(default="", description="The teacher's model name at teacher_url.")
    teacher_api_key: SecretStr | None = Field(default=None, description="API key of the teacher at teacher_url.")
    teacher_langchain: str = Field(
        default="",
        description="A LangChain chat model as teacher, by import path 'package.module:attribute' (object or factory).",
    )
    teacher_qa_file: str = Field(
        default="",
        description="A QA file (JSON Lines: question, answers) for the offline reference teacher.",
    )
    examples_file: str = Field(
        default="",
        description=(
            "Example questions the chat offers a newcomer (JSON Lines: question, optional paraphrase). Empty: the "
            "packaged Natural Questions examples when the teacher can answer them (an LLM teacher, or the "
            "reference teacher on a file that holds them), else the reference teacher's first questions."
        ),
    )
    teacher_timeout_s: float = Field(default=30.0, gt=0, le=600, description="Timeout of one teacher call.")
    teacher_max_tokens: int = Field(default=256, ge=1, le=32768, description="Most tokens a teacher answer may use.")
    teacher_retries: int = Field(
        default=2, ge=0, le=10, description="Retries (with exponential backoff) after a teacher transport failure."
    )
    teacher_breaker_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive teacher failures that open the circuit breaker."
    )
    teacher_breaker_reset_s: float = Field(
        default=60.0, gt=0, le=86400, description="How long an open circuit breaker keeps the teacher unasked."
    )
    teacher_daily_calls: int = Field(default=0, ge=0, description="Teacher calls allowed per UTC day; 0: no cap.")
    teacher_daily_tokens: int = Field(default=0, ge=0, description="Teacher tokens allowed per UTC day; 0: no cap.")
    teacher_max_input_tokens: int = Field(
        default=4000,
        ge=100,
        le=1_000_000,
        description=(
            "Most conversation sent to the teacher in one call, in tokens (estimated as characters / 4): the "
            "oldest turns are left out first, the question never, and the answer's reasons say so."
        ),
    )
    teacher_price_in_per_mtok: float = Field(
        default=0.0, ge=0, description="Price of a million teacher input tokens, for the cost ledger."
    )
    teacher_price_out_per_mtok: float = Field(
        default=0.0, ge=0, description="Price of a million teacher output tokens, for the cost ledger."
    )

    redact_kinds: list[Literal["email", "phone", "secret", "card", "iban", "ssn"]] = Field(
        default_factory=lambda: list(BUILTIN_KINDS),
        description=(
            "What is replaced by [EMAIL] / [PHONE] / [SECRET] / [CARD] / [IBAN] / [SSN] before anything goes to the "
            "teacher (and so before anything is remembered): e-mail addresses, phone numbers, API keys, tokens, "
            "password=… assignments and long random strings, payment card numbers (Luhn), IBANs (mod 97), US "
            "social security numbers. [] turns the built-in kinds off."
        ),
    )
    redact_patterns: dict[str, str] = Field(
        default_factory=dict,
        description='More named regular expressions to redact: {employee_id = "EMP-[0-9]{6}"} -> [EMPLOYEE_ID].',
    )
    redact_phone_region: str = Field(
        default="US",
        description="Region (ISO 3166 code) whose national phone-number format is recognised besides +international.",
    )
    redact_phone_other_regions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_OTHER_PHONE_REGIONS),
        description=(
            "More regions whose national phone-number formats are recognised (numbers of 7 digits or more; each "
            "region costs a bounded scan). [] recognises only redact_phone_region's."
        ),
    )

    confidence_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1.000001,
        description=(
            "Student confidence at or above which its answer is given without the teacher. Unset: the threshold "
            "`mentee calibrate` measured and saved in the home folder (0.5 until the student is calibrated)."
        ),
    )
    strict: bool = Field(
        default=False,
        description=(
            "When the student is unsure and the teacher cannot answer (off, down, over budget): false gives the "
            "student's answer flagged low-confidence; true refuses (HTTP 503)."
        ),
    )
    teacher_context_items: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Related remembered answers (people's corrections first) sent to the teacher as context.",
    )
    teacher_context_distance: float = Field(
        default=0.5,
        gt=0,
        le=2,
        description="Largest cosine distance from the question for a remembered answer to be sent as context.",
    )
    teacher_reask_alone: bool = Field(
        default=True,
        description=(
            "A teacher answer given in a conversation (earlier turns could have instructed the teacher) is never "
            "remembered as it is: true asks the teacher once more with the question (or a follow-up's standalone "
            "rewrite) alone and remembers that answer; false remembers nothing answered in a conversation."
        ),
    )
    question_max_chars: int = Field(
        default=QUESTION_MAX_CHARS,
        ge=100,
        le=100_000,
        description=(
            "Longest question (the last user message, characters) the API, the router and the memory accept; "
            "earlier messages may be up to api_max_message_chars."
        ),
    )

    api_host: str = Field(default="127.0.0.1", min_length=1, description="Address `mentee serve` listens on.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port `mentee serve` listens on.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Key clients must send (Authorization: Bearer) for chat routes. Required beyond loopback.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="Key for the admin routes under /v1/mentee/ (memory, stats). Required beyond loopback.",
    )
    api_model_name: str = Field(
        default="mentee", min_length=1, max_length=64, description="The routed model's name in the API."
    )
    api_max_messages: int = Field(default=64, ge=1, le=10000, description="Most messages one request may carry.")
    api_max_message_chars: int = Field(
        default=8000, ge=100, le=1_000_000, description="Longest message (characters) a request may carry."
    )
    api_max_body_bytes: int = Field(
        default=1_000_000, ge=1000, le=100_000_000, description="Largest request body the API accepts."
    )

    lora_rank: int = Field(
        default=16, ge=1, le=512, description="LoRA rank of the student's adapters (at most vllm_max_lora_rank)."
    )
    lora_alpha: int = Field(default=32, ge=1, le=4096, description="LoRA alpha (the update is scaled by alpha/rank).")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA path while training.")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        description="The student's linear layers that get LoRA weights.",
    )
    train_epochs: int = Field(
        default=6,
        ge=1,
        le=200,
        description=(
            "Passes over a round's data at most (Gemma 3 270M, 100 new NQ facts, the learning rate decaying "
            "linearly from 1e-3: 6 -> recall 0.98, 8 -> 1.0; at a constant 5e-4, 8 -> 0.95)."
        ),
    )
    train_stop_recall: float = Field(
        default=0.98,
        ge=0,
        le=1,
        description=(
            "Stop a round's training after the first epoch in which this share of its examples was recalled "
            "(greedy decoding under teacher forcing writes the whole answer); 0 always trains train_epochs."
        ),
    )
    train_few_shot: bool = Field(
        default=False,
        description=(
            "Train, gate and serve a Q/A student's adapters on the few-shot prompt the base model is asked with; "
            "false: on the question alone (a third of the tokens, a round about twice as fast). Each adapter "
            "records its format, so adapters of either kind keep being served as they were trained."
        ),
    )
    train_learning_rate: float = Field(
        default=1e-3, gt=0, le=1, description="AdamW learning rate of a round (at its start; see train_lr_schedule)."
    )
    train_lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        default="linear",
        description=(
            "How the learning rate moves over a round's train_epochs: constant, or decaying to zero (linear, cosine)."
        ),
    )
    train_batch_size: int = Field(
        default=8, ge=1, le=1024, description="Examples per training step (split across train_processes)."
    )
    train_processes: int = Field(
        default=1,
        ge=1,
        le=1024,
        description=(
            "Data-parallel trainer processes (Hugging Face accelerate launch): one per GPU, or CPU processes "
            "(gloo). 1 runs the trainer as one plain process."
        ),
    )
    train_launch_args: list[str] = Field(
        default_factory=list,
        description=(
            "More `accelerate launch` arguments, e.g. for several machines: --num_machines 2 --machine_rank 0 "
            "--main_process_ip HOST (train_processes counts the processes of all machines)."
        ),
    )
    train_precision: Literal["auto", "fp32", "bf16-mixed", "bf16"] = Field(
        default="auto",
        description=(
            "Number format of a round's training (GPU; a CPU always trains in fp32). auto is fp32: on an H200 the "
            "embedded student trained no faster in bf16, whose rounds diverged there. bf16-mixed keeps fp32 "
            "weights and computes in bf16; bf16 keeps the weights in bf16 too (least memory, for big students)."
        ),
    )
    train_seed: int = Field(default=0, ge=0, description="Seed of a round's sampling and initialisation.")
    train_price_per_hour: float = Field(
        default=0.0,
        ge=0,
        description="Price of an hour of the machine a round trains on, for the cost model (bench/cost.py).",
    )
    train_max_new: int = Field(default=500, ge=1, le=100_000, description="Most new items one round learns.")
    train_recipe: Literal["fresh", "warm", "stack"] = Field(
        default="stack",
        description=(
            "How rounds build on each other: 'fresh' (a new adapter from the base model each round, on the new items, "
            "the replay sample and anchors), 'warm' (continuing the active adapter on the same data; a fresh one "
            "when there is none or its shape differs from the lora_* settings), or 'stack' (a new adapter on the new "
            "items and anchors only, served beside the earlier ones, each answering the items it learned; when "
            "train_stack_max are served together, the next round consolidates them into one)."
        ),
    )
    train_stack_max: int = Field(
        default=7,
        ge=1,
        le=63,
        description=(
            "With train_recipe 'stack': most adapters served together; the round after that trains one adapter on "
            "everything learned (and its new items), served alone. Below vllm_max_loras (a gate asks one more)."
        ),
    )
    train_replay_per_new: float = Field(
        default=1.0, ge=0, le=100, description="Items learned by earlier adapters replayed per new item."
    )
    train_anchors_per_new: float = Field(
        default=1.0, ge=0, le=100, description="Replay anchors (the base model's own right answers) per new item."
    )
    anchors_qa_file: str = Field(
        default="",
        description=(
            "QA file (JSON Lines: question, answers) a home's anchor set is built from when it has none (at "
            "`mentee serve` / `mentee learn` start-up, else by the first round): the base student's own right "
            "answers. Empty: the packaged known-questions file for the embedded student; another student needs one "
            "here (or `mentee anchors build QA_FILE`) before it can learn."
        ),
    )
    anchors_limit: int = Field(
        default=200, ge=1, le=100_000, description="Most questions of the anchors' QA file the base student is asked."
    )
    anchors_min_check: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description=(
            "Fewest held-out check anchors (about half of the right answers) a built anchor set must have: below "
            "1 / gate_max_anchor_drop the gate's forgetting check cannot see one forgotten answer."
        ),
    )
    distillation: Literal["answer", "rationale", "consistency", "paraphrase"] = Field(
        default="answer",
        description=(
            "What a round trains on: 'answer' (the teacher's answers), 'rationale' (plus a short reasoning the "
            "teacher writes, trained as a second task), 'consistency' (only answers the teacher repeats when asked "
            "again), 'paraphrase' (plus rewordings of each question the teacher writes)."
        ),
    )
    distill_samples: int = Field(
        default=3, ge=2, le=10, description="With distillation 'consistency': teacher answers per question in all."
    )
    distill_paraphrases: int = Field(
        default=3, ge=1, le=10, description="With distillation 'paraphrase': rewordings per taught question."
    )
    gate_paraphrase_file: str = Field(
        default="",
        description=(
            "Question pairs that ask the same thing (JSON Lines: q1, q2, optional a1/a2, same_answer), e.g. "
            "data/near-duplicate-pairs.jsonl: the gate asks the other side of each taught question's pair, never "
            "trained on. Empty: no paraphrase check."
        ),
    )
    gate_min_paraphrase_recall: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of held-out paraphrases of taught items answered right alone (0: reported, not required).",
    )
    gate_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Questions the gate has in flight at once (vLLM batches them; 1 asks one at a time).",
    )
    gate_prescreen_margin: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description=(
            "The gate takes a question as answered without asking vLLM when, under teacher forcing in the trainer, "
            "greedy decoding writes an accepted answer whole with every token ahead of the next by this many "
            "logits (vLLM serves in bf16, the trainer computes in fp32); 0 asks every question through vLLM."
        ),
    )
    gate_prescreen_verify: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description=(
            "Pre-screened questions asked through vLLM all the same: if one is answered otherwise, the round "
            "distrusts the pre-screen and asks every question."
        ),
    )
    gate_min_new_recall: float = Field(
        default=0.9, ge=0, le=1, description="Share of newly taught items the student must answer right alone."
    )
    gate_min_retention: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Share of the items taught by earlier rounds (gate_retention_sample) it must still answer right.",
    )
    gate_min_round_retention: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description=(
            "The same for each earlier round on its own: one round forgotten is refused even when the others hold "
            "the overall share up."
        ),
    )
    gate_retention_sample: int = Field(
        default=200,
        ge=0,
        le=100_000,
        description=(
            "Items taught by earlier rounds the gate asks (with their held-out paraphrases), the same number from "
            "each round as far as it has them; 0 checks no retention."
        ),
    )
    gate_max_anchor_drop: float = Field(
        default=0.05, ge=0, le=1, description="Largest fall in held-out anchor accuracy against the base model."
    )
    adapter_scope: Literal["taught", "all"] = Field(
        default="taught",
        description=(
            "Which questions the active adapter answers: 'taught' (those near something an adapter learned; the "
            "base model answers the rest, so its knowledge is not lost to the adapter) or 'all'."
        ),
    )
    adapter_scope_distance: float = Field(
        default=0.35,
        gt=0,
        le=2,
        description="With adapter_scope 'taught': largest cosine distance to a learned question for the adapter.",
    )
    recalibrate_after_round: bool = Field(
        default=True,
        description="After a new adapter is served, re-measure the threshold on the last calibration's QA file.",
    )
    learn_after_items: int = Field(
        default=0, ge=0, description="Start a learning round when this many remembered items are not learned (0: off)."
    )
    learn_every_minutes: float = Field(
        default=0.0, ge=0, description="Start a learning round this often, in minutes (0: off)."
    )
    adapters_keep_loaded: int = Field(
        default=2, ge=1, le=64, description="Adapter versions kept loaded in vLLM (the active one included)."
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("student_model", mode="after")
    @classmethod
    def _check_student_model(cls, value: str) -> str:
        looks_like_path = value.startswith(("/", "./", "../", "~"))
        if looks_like_path and not Path(value).expanduser().is_dir():
            msg = f"is not a model folder: {value!r} does not exist or is not a directory"
            raise ValueError(msg)
        return str(Path(value).expanduser().absolute()) if looks_like_path else value

    @field_validator("student_url", "chroma_url", "teacher_url", mode="after")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            msg = f"must start with http:// or https://, got {_without_credentials(value)!r}"
            raise ValueError(msg)
        return value.rstrip("/").removesuffix("/v1")

    @field_validator("student_api_key", "teacher_api_key", "api_key", "admin_key", mode="after")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # A key read from a secrets file often ends in a newline: the key is what is around it. Blank: not set.
        stripped = value.get_secret_value().strip() if value is not None else ""
        return SecretStr(stripped) if stripped else None

    @model_validator(mode="after")
    def _check_lora_fits_vllm(self) -> Settings:
        if self.lora_rank > self.vllm_max_lora_rank:
            msg = f"lora_rank {self.lora_rank} is above vllm_max_lora_rank {self.vllm_max_lora_rank}"
            raise ValueError(msg)
        if self.train_recipe == "stack" and self.train_stack_max >= self.vllm_max_loras:
            msg = (
                f"train_stack_max {self.train_stack_max} must be below vllm_max_loras {self.vllm_max_loras}: a gate "
                "asks its candidate beside the adapters served"
            )
            raise ValueError(msg)
        if self.adapters_keep_loaded > self.vllm_max_loras:
            msg = f"adapters_keep_loaded {self.adapters_keep_loaded} is above vllm_max_loras {self.vllm_max_loras}"
            raise ValueError(msg)
        return self

    @field_validator("anchors_qa_file", "examples_file", "memory_verifier_file", mode="after")
    @classmethod
    def _check_anchors_qa_file(cls, value: str) -> str:
        if value and not Path(value).expanduser().is_file():
            msg = f"is not a file: {value!r}"
            raise ValueError(msg)
        return str(Path(value).expanduser().absolute()) if value else value

    @field_validator("redact_phone_region", mode="after")
    @classmethod
    def _check_phone_region(cls, value: str) -> str:
        return _phone_region(value)

    @field_validator("redact_phone_other_regions", mode="after")
    @classmethod
    def _check_phone_regions(cls, value: list[str]) -> list[str]:
        return [_phone_region(region) for region in value]

    @field_validator("redact_patterns", mode="after")
    @classmethod
    def _check_redact_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        from .redaction import Redactor

        try:
            Redactor((), value)
        except ConfigError as e:
            raise ValueError(str(e)) from e
        return value

    @field_validator("vllm_max_lora_rank", mode="after")
    @classmethod
    def _check_rank(cls, value: int) -> int:
        if value not in VLLM_LORA_RANKS:
            msg = f"must be one of {VLLM_LORA_RANKS}, got {value}"
            raise ValueError(msg)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    # Derived places inside the home folder.
    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def vllm_dir(self) -> Path:
        return self.home / "vllm"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def setting_default(name: str) -> Any:
    """A setting's default (a list as a tuple, for frozen dataclasses)."""
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    return tuple(default) if isinstance(default, list) else default


def setting_field(name: str) -> Any:
    """A dataclass field of a part's own knobs (LoRA, gate, teacher limits) that stands for the setting ``name``:
    it defaults to the setting's default (no second copy) and :meth:`FromSettings.from_settings` fills it."""
    import dataclasses

    return dataclasses.field(default=setting_default(name), metadata={"setting": name})


class FromSettings:
    """For dataclasses whose fields are each a :func:`setting_field`: built from the settings in one place."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        import dataclasses

        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "setting" in field.metadata:
                value = getattr(settings, field.metadata["setting"])
                values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings; raise :class:`ConfigError` naming any bad value.

    ``config_file`` (or ``$MENTEE_CONFIG``) is a TOML file with the same field names as the settings.
    """
    path = config_file if config_file is not None else os.environ.get(CONFIG_FILE_ENV) or None
    settings_cls: type[Settings] = Settings
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            msg = f"config file {str(path)!r} does not exist"
            raise ConfigError(msg)
        try:
            with path.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as e:
            msg = f"config file {str(path)!r} is not valid TOML: {e}"
            raise ConfigError(msg) from e
        settings_cls = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return settings_cls(**overrides)
    except ValidationError as e:
        raise ConfigError(_describe_validation_error(e, path)) from e


def _describe_validation_error(error: ValidationError, config_file: Path | None) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" = {_shown_value(item, value)}"
        if item["loc"]:
            where = f"{field} (env {ENV_PREFIX}{field.upper()}"
            where += f", or in {config_file})" if config_file else ")"
        else:  # a rule across settings: the message names them
            where = "settings"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a mentee setting (see `mentee config`)"
        problems.append(f"{where}{shown}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def _shown_value(item: Any, value: Any) -> str:
    """A bad value as an error message may show it: never a secret's, nor one of a setting mentee does not know
    (a misspelt ``admin_keys`` holds a key), and a URL without its credentials."""
    name = str(item["loc"][0]) if item["loc"] else ""
    field = Settings.model_fields.get(name)
    if item["type"] == "extra_forbidden" or field is None or field.annotation in (SecretStr, SecretStr | None):
        return "(value hidden)"
    return repr(_without_credentials(value)) if isinstance(value, str) else repr(value)


def _without_credentials(value: str) -> str:
    """``scheme://user:password@host/…`` as ``scheme://***@host/…``; other text as it is."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return value


def describe_settings(settings: Settings) -> str:
    """The effective settings as a TOML document, each field's help as a comment; secrets are masked."""
    lines = ["# mentee's effective configuration (environment MENTEE_<NAME>, or a TOML file via --config)"]
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        lines.append(f"# {field.description}")
        lines.append(f"# {name} = (not set)" if value is None else f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, SecretStr):
        return '"**********"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys are plain names (validated)
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(_without_credentials(str(value)))


def _phone_region(value: str) -> str:
    """A region code libphonenumber knows, as a validation error (naming the setting) otherwise."""
    try:
        return check_phone_region(value)
    except ConfigError as e:
        raise ValueError(str(e)) from e
