"""The student: a small LLM served by vLLM, asked with token log-probabilities, streamed, and LoRA-switchable.

:class:`Student` is the one entry point. It either starts mentee's own vLLM server (preparing the embedded
Gemma 3 270M first if no other model is configured) or connects to a running vLLM URL, and puts questions to
the model in the prompt format the model calls for (:mod:`mentee.server.student.prompting`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from ..core.config import QUESTION_MAX_CHARS, Settings
from ..core.errors import InvalidRequestError, StudentError
from .prompting import (
    ChatMessage,
    ChatTemplatePromptFormat,
    PromptFormat,
    QAPromptFormat,
    StudentRequest,
    detect_prompt_format,
    prompt_format,
)

if TYPE_CHECKING:
    import openai

    from .vllm_server import VLLMServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability, and the most likely alternatives."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """What the student wrote, with the evidence a confidence score is computed from."""

    text: str
    tokens: tuple[TokenLogprob, ...]
    finish_reason: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def from_chunks(cls, chunks: Sequence[StreamChunk], *, model: str, seconds: float = 0.0) -> Generation:
        """The whole answer a stream of chunks made up."""
        tokens = tuple(t for c in chunks for t in c.tokens)
        usage = next((c for c in reversed(chunks) if c.prompt_tokens is not None), None)
        return cls(
            text="".join(c.text for c in chunks).strip(),
            tokens=tokens,
            finish_reason=next((c.finish_reason for c in reversed(chunks) if c.finish_reason), None),
            model=model,
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else len(tokens),
            seconds=seconds,
        )

    @property
    def min_logprob(self) -> float:
        return min((t.logprob for t in self.tokens), default=-math.inf)

    @property
    def mean_logprob(self) -> float:
        return sum(t.logprob for t in self.tokens) / len(self.tokens) if self.tokens else -math.inf

    @property
    def confidence(self) -> float:
        """Probability of the least likely answer token, in [0, 1]: the signal that best separated right from
        invented answers on this student (AUROC 0.94, DESIGN.md). 0 for an empty answer."""
        if not self.text.strip() or not self.tokens:
            return 0.0
        return math.exp(self.min_logprob)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk has ``finish_reason`` set."""

    text: str
    tokens: tuple[TokenLogprob, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None  # set on the chunk that reports usage (the last one)
    completion_tokens: int | None = None


class Student:
    """The student model behind vLLM: own server (started here) or an existing one (``student_url``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: VLLMServer | None = None
        self.url = settings.student_url
        self.model_dir: Path | None = None
        self._format: PromptFormat | None = None
        self._adapter_formats: dict[str, PromptFormat] = {}  # served adapter name -> the format it was trained in
        self._client: openai.OpenAI | None = None
        self._http: httpx.Client | None = None
        # Mentee's own vLLM is watched and restarted when it dies (vllm_max_restarts); ``on_restart`` runs after
        # each restart (the restarted server has lost its LoRA adapters).
        self.on_restart: Callable[[], None] | None = None
        self.restarts = 0
        self.gave_up: str | None = None  # why the supervisor stopped restarting
        self._closing = threading.Event()
        self._lifecycle = threading.Lock()
        self._supervisor: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start (or connect to) vLLM and make sure it serves the student."""
        if self._client is not None:
            return self
        if self.url:
            self._connect_existing()
        else:
            from .vllm_server import VLLMServer

            model = self.resolve_model()
            self.server = VLLMServer(self.settings, model).start()
            self.url = self.server.url
        self._http = httpx.Client(base_url=self.url, timeout=self.settings.request_timeout_s, headers=self._auth())
        self._client = self._openai_client()
        self._format = self._choose_format()
        if self.server is not None and self.settings.vllm_max_restarts:
            self._closing.clear()
            # The thread that starts a vLLM is the one whose end the kernel's parent-death signal follows: the
            # supervisor restarts it, and lives until close().
            self._supervisor = threading.Thread(target=self._supervise, name="mentee-vllm-supervisor", daemon=True)
            self._supervisor.start()
        return self

    @property
    def serving(self) -> bool:
        """Whether the student is served, or is being restarted to be served again."""
        if self.server is None:
            return self._client is not None
        supervised = self._supervisor is not None and self._supervisor.is_alive() and self.gave_up is None
        return self.server.running or supervised

    def _supervise(self) -> None:
        recent: deque[float] = deque()
        limit = self.settings.vllm_max_restarts
        while not self._closing.wait(2.0):
            server = self.server
            if server is None or server.running:
                continue
            now = time.monotonic()
            while recent and now - recent[0] > 3600:
                recent.popleft()
            if len(recent) >= limit:
                if self.gave_up is None:
                    self.gave_up = f"vLLM died {len(recent)} times within an hour (vllm_max_restarts = {limit})"
                    logger.error("the student's vLLM server is down for good: %s", self.gave_up)
                continue
            with self._lifecycle:
                if self._closing.is_set():
                    return
                recent.append(now)
                logger.error(
                    "the student's vLLM server died (exit code %s); restarting it (%d of %d this hour)",
                    server.exit_code,
                    len(recent),
                    limit,
                )
                try:
                    server.stop()  # what is left of its process group
                    server.start()  # same port: the clients' URL stays right
                except StudentError as e:
                    logger.error("restarting the student's vLLM server failed: %s", e)
                    continue
                self.restarts += 1
            if self.on_restart is not None:
                try:
                    self.on_restart()
                except Exception:
                    logger.exception("after the student's vLLM server restarted, setting it up again failed")

    def close(self) -> None:
        """Stop mentee's own vLLM server (an external one is left running) and close connections."""
        self._closing.set()
        with self._lifecycle:  # a restart under way finishes first, then is stopped
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.url = self.settings.student_url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def resolve_model(self) -> str:
        """The model vLLM loads: the configured one, or the embedded Gemma 3 270M (prepared if needed)."""
        configured = self.settings.student_model
        if configured:
            self.model_dir = Path(configured) if Path(configured).is_dir() else None
            return configured
        from .models import prepare_embedded_student

        self.model_dir = prepare_embedded_student(self.settings.models_dir, verify=False)
        return str(self.model_dir)

    def _connect_existing(self) -> None:
        models = self._get_json(self.url, "/v1/models")
        served = [m.get("id") for m in models.get("data", [])]
        if self.settings.student_served_name not in served:
            msg = (
                f"the vLLM server at {self.url} does not serve {self.settings.student_served_name!r} "
                f"(it serves {served}); set MENTEE_STUDENT_SERVED_NAME to one of them"
            )
            raise StudentError(msg)
        configured = self.settings.student_model
        self.model_dir = Path(configured) if configured and Path(configured).is_dir() else None

    def _get_json(self, base: str, path: str) -> dict[str, Any]:
        try:
            response = httpx.get(f"{base}{path}", headers=self._auth(), timeout=10.0)
            response.raise_for_status()
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as e:
            msg = f"cannot reach the vLLM server at {base} ({path}): {e}"
            raise StudentError(msg) from e

    def _auth(self) -> dict[str, str]:
        key = self.settings.student_api_key
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def _openai_client(self) -> openai.OpenAI:
        import openai

        key = self.settings.student_api_key
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=key.get_secret_value() if key else "not-needed",
            timeout=self.settings.request_timeout_s,
            max_retries=2,
        )

    def _choose_format(self) -> PromptFormat | None:
        if self.settings.prompt_format != "auto":
            return prompt_format(self.settings.prompt_format)
        if self.model_dir is not None:
            return detect_prompt_format(self.model_dir)
        return None  # a remote model we can't inspect: try its chat template, fall back to Q/A (see _request)

    @property
    def prompt_format(self) -> PromptFormat:
        """The format in use ('chat' until a remote model without a chat template shows otherwise)."""
        return self._format or ChatTemplatePromptFormat()

    # -- generation ------------------------------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[ChatMessage] | str,
        *,
        adapter: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Generation:
        """The student's answer to a question or conversation, with its token log-probabilities."""
        started = time.monotonic()
        chunks = list(self.stream(messages, adapter=adapter, max_tokens=max_tokens, temperature=temperature))
        return Generation.from_chunks(
            chunks, model=adapter or self.settings.student_served_name, seconds=time.monotonic() - started
        )

    def stream(
        self,
        messages: Sequence[ChatMessage] | str,
        *,
        adapter: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the student's answer piece by piece, each piece with its tokens' log-probabilities."""
        conversation = as_conversation(messages, max_question_chars=self.settings.question_max_chars)
        client = self._require_client()
        model = adapter or self.settings.student_served_name
        options: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature if temperature is None else temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        import openai

        request = self._adapter_formats.get(model, self.prompt_format).build(conversation)
        try:
            try:
                stream = self._open_stream(client, request, options)
            except openai.BadRequestError as e:
                if self._format is not None or "chat template" not in str(e).lower():
                    raise
                logger.info("the student has no chat template; using the few-shot Q/A prompt")
                self._format = QAPromptFormat()
                request = self._format.build(conversation)
                stream = self._open_stream(client, request, options)
            if self._format is None:
                self._format = ChatTemplatePromptFormat()
        except openai.OpenAIError as e:
            raise _student_error(e, model) from e
        try:
            for event in stream:
                for choice in event.choices:
                    piece = _chunk_of(choice, request.endpoint)
                    if piece.text or piece.tokens or piece.finish_reason:
                        yield piece
                if getattr(event, "usage", None) is not None:
                    yield StreamChunk(
                        text="",
                        prompt_tokens=event.usage.prompt_tokens,
                        completion_tokens=event.usage.completion_tokens,
                    )
        except openai.OpenAIError as e:
            raise _student_error(e, model) from e
        finally:
            stream.close()

    def _open_stream(self, client: openai.OpenAI, request: StudentRequest, options: dict[str, Any]) -> Any:
        top = self.settings.top_logprobs
        if request.endpoint == "completions":
            return client.completions.create(
                prompt=request.prompt, stop=list(request.stop) or None, logprobs=max(top, 1), **options
            )
        return client.chat.completions.create(
            messages=list(request.messages),  # type: ignore[arg-type]
            logprobs=True,
            top_logprobs=top,
            stop=list(request.stop) or None,
            **options,
        )

    def _require_client(self) -> openai.OpenAI:
        if self._client is None:
            msg = "the student is not started: call Student.start() or use it in a `with` block"
            raise StudentError(msg)
        return self._client

    # -- LoRA adapters ---------------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str | Path, format_name: str | None = None) -> None:
        """Load a peft LoRA adapter folder into vLLM under ``name`` (a new name per version, never reused), to be
        asked in the prompt format ``format_name`` (the one it was trained in; ``None``: the student's). Loading
        a name already served (by another worker sharing this vLLM) only records its format."""
        if format_name is not None:
            self._adapter_formats[name] = prompt_format(format_name)
        try:
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(Path(path).absolute())})
        except StudentError:
            # Workers sharing one vLLM follow the same switch: another may have loaded it a moment ago.
            if name in self.adapters():
                return
            raise
        logger.info("loaded LoRA adapter %s from %s", name, path)

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter called ``name`` from vLLM."""
        self._post("/v1/unload_lora_adapter", {"lora_name": name})
        self._adapter_formats.pop(name, None)
        logger.info("unloaded LoRA adapter %s", name)

    def adapters(self) -> list[str]:
        """Names of the LoRA adapters vLLM serves now."""
        if self._http is None:
            self._require_client()
        assert self._http is not None
        data = self._http.get("/v1/models").json().get("data", [])
        return sorted(m["id"] for m in data if m.get("parent"))

    def _post(self, path: str, payload: dict[str, str]) -> None:
        if self._http is None:
            self._require_client()
        assert self._http is not None
        try:
            response = self._http.post(path, json=payload)
        except httpx.HTTPError as e:
            msg = f"vLLM at {self.url} did not answer {path}: {e}"
            raise StudentError(msg) from e
        if response.status_code >= 400:
            msg = f"vLLM refused {path} for {payload.get('lora_name')!r}: {response.status_code} {response.text}"
            raise StudentError(msg)


def as_conversation(
    messages: Sequence[ChatMessage] | str, *, max_question_chars: int = QUESTION_MAX_CHARS
) -> list[ChatMessage]:
    """A question or a conversation as a checked list of messages (the question at most ``max_question_chars``)."""
    if isinstance(messages, str):
        messages = [ChatMessage("user", messages)]
    conversation = list(messages)
    if not conversation:
        msg = "the conversation is empty"
        raise InvalidRequestError(msg)
    question = conversation[-1].content.strip()
    if not question:
        msg = "the question is empty"
        raise InvalidRequestError(msg)
    if len(question) > max_question_chars:
        msg = f"the question is {len(question)} characters long; the limit is {max_question_chars} (question_max_chars)"
        raise InvalidRequestError(msg)
    return conversation


def _chunk_of(choice: Any, endpoint: str) -> StreamChunk:
    tokens: list[TokenLogprob] = []
    logprobs = getattr(choice, "logprobs", None)
    if endpoint == "completions":
        text = choice.text or ""
        if logprobs is not None and logprobs.tokens:
            tops = logprobs.top_logprobs or [None] * len(logprobs.tokens)
            for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, tops, strict=False):
                tokens.append(TokenLogprob(token, float(logprob), dict(top or {})))
    else:
        text = (choice.delta.content if choice.delta else None) or ""
        for item in (logprobs.content or []) if logprobs is not None else []:
            top = {alt.token: float(alt.logprob) for alt in (item.top_logprobs or [])}
            tokens.append(TokenLogprob(item.token, float(item.logprob), top))
    return StreamChunk(text=text, tokens=tuple(tokens), finish_reason=choice.finish_reason)


def _student_error(error: Exception, model: str) -> StudentError | InvalidRequestError:
    import openai

    if isinstance(error, openai.BadRequestError):  # e.g. a conversation longer than the student's context
        return InvalidRequestError(f"the student ({model}) cannot take this request: {error.message}")
    return StudentError(f"the student ({model}) failed: {error}")
