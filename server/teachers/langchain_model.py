"""A teacher that is any LangChain chat model: an object, or an import path ``package.module:attribute``."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

from ..core.errors import ConfigError
from ..student.prompting import ChatMessage
from .base import (
    DEFAULT_SYSTEM_PROMPT,
    ChatTeacher,
    TeacherAnswer,
    TeacherError,
    TeacherUnavailableError,
)


def load_chat_model(path: str) -> Any:
    """The object at ``package.module:attribute`` (called if it is a factory), checked to be a chat model."""
    from langchain_core.language_models import BaseChatModel

    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        msg = f"teacher_langchain must look like 'package.module:attribute', got {path!r}"
        raise ConfigError(msg)
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        msg = f"teacher_langchain {path!r} cannot be imported: {e}"
        raise ConfigError(msg) from e
    model = target() if callable(target) and not isinstance(target, BaseChatModel) else target
    if not isinstance(model, BaseChatModel):
        msg = f"teacher_langchain {path!r} is a {type(model).__name__}, not a LangChain chat model"
        raise ConfigError(msg)
    return model


class LangChainTeacher(ChatTeacher):
    """Asks a LangChain ``BaseChatModel`` (``ChatOpenAI(...)``, ``ChatAnthropic(...)``, a local model, …)."""

    def __init__(self, model: Any, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> None:
        from langchain_core.language_models import BaseChatModel

        if isinstance(model, str):
            model = load_chat_model(model)
        if not isinstance(model, BaseChatModel):
            msg = f"a LangChain teacher needs a chat model, got {type(model).__name__}"
            raise ConfigError(msg)
        self.model = model
        self.system_prompt = system_prompt
        self.name = (
            f"langchain:{getattr(model, 'model_name', None) or getattr(model, 'model', None) or type(model).__name__}"
        )

    def complete(
        self, system: str, messages: Sequence[ChatMessage], *, temperature: float | None = None
    ) -> TeacherAnswer:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"user": HumanMessage, "assistant": AIMessage}
        payload: list[Any] = [SystemMessage(system)]
        payload += [kinds[m.role](m.content) for m in messages if m.role in kinds]
        started = time.monotonic()
        try:
            # A temperature is passed only where the model has one (ChatOpenAI, ChatAnthropic, …): other models
            # keep their own sampling, so a re-ask may simply repeat itself.
            model = self.model
            if temperature is not None and "temperature" in type(model).model_fields:
                model = model.model_copy(update={"temperature": temperature})
            reply = model.invoke(payload)
        except (TimeoutError, ConnectionError, OSError) as e:
            msg = f"the teacher {self.name} is unreachable: {e}"
            raise TeacherUnavailableError(msg) from e
        except Exception as e:
            if type(e).__name__ in {"APIConnectionError", "APITimeoutError", "InternalServerError", "RateLimitError"}:
                msg = f"the teacher {self.name} is unreachable or failing: {e}"
                raise TeacherUnavailableError(msg) from e
            msg = f"the teacher {self.name} failed: {e}"
            raise TeacherError(msg) from e
        usage = getattr(reply, "usage_metadata", None) or {}
        text = reply.content if isinstance(reply.content, str) else " ".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in reply.content
        )  # fmt: skip
        return TeacherAnswer(
            text=text.strip(),
            model=self.name.removeprefix("langchain:"),
            tokens_in=int(usage.get("input_tokens", 0)),
            tokens_out=int(usage.get("output_tokens", 0)),
            seconds=time.monotonic() - started,
        )
