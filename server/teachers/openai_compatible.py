"""A teacher behind any OpenAI-compatible chat endpoint: OpenAI itself, a vLLM or Ollama server, …"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ..student.prompting import ChatMessage
from .base import (
    DEFAULT_SYSTEM_PROMPT,
    ChatTeacher,
    TeacherAnswer,
    TeacherError,
    TeacherUnavailableError,
)

logger = logging.getLogger(__name__)


class OpenAICompatibleTeacher(ChatTeacher):
    """``POST {url}/v1/chat/completions`` with the official ``openai`` client (its own retries turned off: the
    guard retries, so a failure is counted once by the circuit breaker)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_tokens: int = 256,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        import openai

        base_url = url.rstrip("/")
        self.name = f"openai:{model}"
        self.model = model
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self._client = openai.OpenAI(
            base_url=base_url if base_url.endswith("/v1") else f"{base_url}/v1",
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            max_retries=0,
        )

    def complete(
        self, system: str, messages: Sequence[ChatMessage], *, temperature: float | None = None
    ) -> TeacherAnswer:
        import openai

        payload: list[dict[str, Any]] = [{"role": "system", "content": system}]
        payload += [{"role": m.role, "content": m.content} for m in messages]
        started = time.monotonic()
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=payload,
                max_tokens=self.max_tokens,
                temperature=0.0 if temperature is None else temperature,
            )
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as e:
            msg = f"the teacher {self.name} is unreachable or failing: {e}"
            raise TeacherUnavailableError(msg) from e
        except openai.RateLimitError as e:
            msg = f"the teacher {self.name} is rate-limiting: {e}"
            raise TeacherUnavailableError(msg) from e
        except openai.OpenAIError as e:
            msg = f"the teacher {self.name} refused the request: {e}"
            raise TeacherError(msg) from e
        except ValueError as e:  # a 200 that is no JSON at all, e.g. a proxy's error page
            msg = f"the teacher {self.name} answered something that is not a chat completion: {e}"
            raise TeacherUnavailableError(msg) from e
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list):  # JSON, but not a chat completion
            msg = f"the teacher {self.name} answered something that is not a chat completion: {str(response)[:200]}"
            raise TeacherUnavailableError(msg)
        choice = choices[0] if choices else None
        content = getattr(getattr(choice, "message", None), "content", None)
        text = content if isinstance(content, str) else ""
        usage = response.usage
        return TeacherAnswer(
            text=text.strip(),
            model=response.model or self.model,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            seconds=time.monotonic() - started,
            unusable="the answer was cut off" if choice and choice.finish_reason == "length" else None,
        )

    def close(self) -> None:
        self._client.close()
