"""``ChatMentee``: a LangChain chat model that talks to a mentee server, as ``ChatOpenAI`` talks to OpenAI.

.. code-block:: python

    from mentee.server import ChatMentee

    chat = ChatMentee(base_url="http://127.0.0.1:8080")  # or MENTEE_URL; key: MENTEE_API_KEY
    reply = chat.invoke("Who wrote The Old Man and the Sea?")
    reply.response_metadata["mentee"]  # {"source": "teacher", "confidence": 0.12, "adapter": None, …}

Each answer carries mentee's routing (source, confidence, adapter, reasons) in ``response_metadata["mentee"]``
and token counts in ``usage_metadata``. The request switches (``memory``, ``teacher``, ``learn``) are fields, and
can be changed per call: ``chat.invoke(q, teacher=False)`` or ``chat.bind(memory=False)``. mentee answers with
text only: no tool calls, structured output or images.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, SecretStr

logger = logging.getLogger(__name__)

SWITCHES = ("memory", "teacher", "learn")


class ChatMentee(BaseChatModel):
    """A mentee server's routed model (memory -> student -> teacher) as a LangChain chat model."""

    model_config = ConfigDict(populate_by_name=True)

    base_url: str = Field(
        default_factory=from_env("MENTEE_URL", default="http://127.0.0.1:8080"),
        description="The mentee server (`mentee serve`); from MENTEE_URL when not given.",
    )
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("MENTEE_API_KEY", default=None),
        description="The server's chat key (api_key setting); from MENTEE_API_KEY when not given.",
    )
    model: str = Field(default="mentee", alias="model_name", description="The routed model's name on the server.")
    memory: bool = Field(default=True, description="Let remembered answers answer.")
    teacher: bool = Field(default=True, description="Let the teacher answer when the student is unsure.")
    learn: bool = Field(default=True, description="Let the server remember what the teacher answers.")
    temperature: float | None = Field(default=None, description="Passed on; mentee's student answers greedily.")
    max_tokens: int | None = Field(default=None, description="Passed on; the server's max_tokens bounds answers.")
    stop: list[str] | None = Field(default=None, description="Stop sequences, passed on to the server.")
    timeout: float | None = Field(default=120.0, description="Seconds one request may take.")
    max_retries: int = Field(default=2, ge=0, description="Retries after a connection failure or a 5xx.")
    streaming: bool = Field(default=False, description="Stream answers by default (invoke then streams too).")

    @property
    def _llm_type(self) -> str:
        return "mentee-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, **{name: getattr(self, name) for name in SWITCHES}}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="mentee",
            ls_model_name=kwargs.get("model", self.model),
            ls_model_type="chat",
        )
        if (temperature := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = stop
        return params

    # -- requests ----------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        import openai

        return openai.OpenAI(**self._client_options())

    def _async_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(**self._client_options())

    def _client_options(self) -> dict[str, Any]:
        base = self.base_url.rstrip("/")
        return {
            "base_url": base if base.endswith("/v1") else f"{base}/v1",
            "api_key": self.api_key.get_secret_value() if self.api_key else "not-needed",
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        switches = {name: bool(kwargs.pop(name, getattr(self, name))) for name in SWITCHES}
        request: dict[str, Any] = {
            "model": kwargs.pop("model", self.model),
            "messages": [to_openai(message) for message in messages],
            "extra_body": {"mentee": switches},
        }
        for name in ("temperature", "max_tokens"):
            value = kwargs.pop(name, getattr(self, name))
            if value is not None:
                request[name] = value
        if stop := stop or kwargs.pop("stop", None) or self.stop:
            request["stop"] = stop
        kwargs.pop("stream", None)
        if kwargs:
            logger.debug("ChatMentee ignores the options %s", sorted(kwargs))
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            from langchain_core.language_models.chat_models import generate_from_stream

            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        with self._client() as client:
            response = client.chat.completions.create(**self._request(messages, stop, kwargs))
        return _result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            from langchain_core.language_models.chat_models import agenerate_from_stream

            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        async with self._async_client() as client:
            response = await client.chat.completions.create(**self._request(messages, stop, kwargs))
        return _result(response)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        with self._client() as client:
            stream = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
            for chunk in stream:
                generation = _chunk(chunk)
                if generation is None:
                    continue
                if run_manager is not None and generation.text:
                    run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        async with self._async_client() as client:
            stream = await client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in stream:
                generation = _chunk(chunk)
                if generation is None:
                    continue
                if run_manager is not None and generation.text:
                    await run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation


def to_openai(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message as an OpenAI chat message (text only; tool and function messages carry no role mentee
    routes, so they are refused with the reason)."""
    if isinstance(message, SystemMessage):
        role = "system"
    elif isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, AIMessage):
        role = "assistant"
    elif isinstance(message, ChatMessage) and message.role in ("system", "user", "assistant"):
        role = message.role
    else:
        msg = f"ChatMentee takes system, human and AI messages; got a {message.type} message"
        raise ValueError(msg)
    return {"role": role, "content": message.text}


def _usage(usage: Any) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=int(usage.prompt_tokens or 0),
        output_tokens=int(usage.completion_tokens or 0),
        total_tokens=int(usage.total_tokens or 0),
    )


def _metadata(response: Any, finish_reason: str | None) -> dict[str, Any]:
    extra = getattr(response, "model_extra", None) or {}
    metadata: dict[str, Any] = {"model_name": response.model, "model_provider": "mentee"}
    if finish_reason is not None:
        metadata["finish_reason"] = finish_reason
    if "mentee" in extra:
        metadata["mentee"] = extra["mentee"]
    return metadata


def _result(response: Any) -> ChatResult:
    choice = response.choices[0]
    message = AIMessage(
        content=choice.message.content or "",
        id=response.id,
        response_metadata=_metadata(response, choice.finish_reason),
        usage_metadata=_usage(response.usage),
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


def _chunk(chunk: Any) -> ChatGenerationChunk | None:
    choice = chunk.choices[0] if chunk.choices else None
    finish = choice.finish_reason if choice is not None else None
    usage = _usage(getattr(chunk, "usage", None))
    text = (choice.delta.content or "") if choice is not None else ""
    last = finish is not None
    if not text and not last and usage is None:
        return None
    message = AIMessageChunk(
        content=text,
        id=chunk.id,
        response_metadata=_metadata(chunk, finish) if last else {},
        usage_metadata=usage,
        chunk_position="last" if last else None,
    )
    return ChatGenerationChunk(message=message)
