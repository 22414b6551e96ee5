"""What the API speaks: OpenAI's chat request and response shapes (with mentee's additions), the admin bodies, and
errors in OpenAI's shape (``{"error": {"message", "type", "code", …}}``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..student.prompting import ChatMessage

if TYPE_CHECKING:
    from ..serving.router import RoutedAnswer


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.details = details  # more fields of the error object, as data (e.g. the running round's id on a 409)


def error_response(error: ApiError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.kind, "code": error.code, "param": None, **error.details}}
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(body, status_code=error.status, headers=headers)


# -- requests ------------------------------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, … are accepted and ignored

    # "tool" and "function" are accepted here so that conversation() can say what mentee does not do (it has no
    # tools), instead of a bare 422.
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        # Parts are pieces of one text: joined with a space where neither side has one ("capital" + "of France").
        text = ""
        for part in self.content:
            if text and part.text and not text[-1].isspace() and not part.text[0].isspace():
                text += " "
            text += part.text
        return text


class MenteeSwitchesIn(BaseModel):
    """Which sources this request may use (all by default)."""

    model_config = ConfigDict(extra="forbid")

    memory: bool = Field(default=True, description="Let the memory answer.")
    teacher: bool = Field(default=True, description="Let the teacher answer.")
    learn: bool = Field(default=True, description="Remember the teacher's answer.")
    guided: bool = Field(
        default=False, description="Use the guided run's own memory instead of the deployment's (admin key only)."
    )


class TrainRequest(BaseModel):
    """What a round learns from (the body of ``POST /v1/mentee/train`` is optional)."""

    model_config = ConfigDict(extra="forbid")

    guided: bool = Field(default=False, description="Learn the guided run's items (its own memory) only.")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. Sampling options are accepted but mentee answers greedily with its own
    token limit: the confidence gate is calibrated on greedy answers."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    mentee: MenteeSwitchesIn | None = None
    # Accepted so that unsupported() can refuse what mentee cannot honour, rather than ignore it silently.
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    function_call: Any = None
    response_format: Any = None

    def unsupported(self) -> str | None:
        """What this request asks that mentee cannot honour (tools, forced tool calls, a structured output)."""
        if self.tools or self.functions:
            return "tools and functions are not supported: mentee answers with text only"
        if self.tool_choice not in (None, "none", "auto") or self.function_call not in (None, "none", "auto"):
            return f"tool_choice {self.tool_choice or self.function_call!r} cannot be honoured: mentee has no tools"
        kind = self.response_format.get("type") if isinstance(self.response_format, dict) else self.response_format
        if kind not in (None, "text"):
            return f"response_format {kind!r} is not supported: mentee answers with plain text"
        return None


class CorrectionIn(BaseModel):
    """A person's answer to remember (it outranks any teacher's)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="At most question_max_chars characters.")
    answer: str = Field(min_length=1, max_length=20000)
    by: str = Field(default="admin", min_length=1, max_length=100, description="Who corrected it.")


class AnswerCorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=20000)
    by: str = Field(default="admin", min_length=1, max_length=100)


def conversation(
    messages: list[MessageIn], *, max_messages: int, max_chars: int, max_question_chars: int
) -> list[ChatMessage]:
    """The request's messages as mentee's conversation, or the :class:`ApiError` that says what is wrong."""
    if len(messages) > max_messages:
        raise ApiError(413, f"{len(messages)} messages; the limit is {max_messages}", code="too_many_messages")
    conversation = []
    for number, message in enumerate(messages):
        text = message.text()
        if len(text) > max_chars:
            msg = f"message {number} is {len(text)} characters long; the limit is {max_chars}"
            raise ApiError(413, msg, code="message_too_long")
        if not _is_unicode(text):
            msg = f"message {number} is not valid Unicode (it holds a lone surrogate escape such as \\ud800)"
            raise ApiError(400, msg, code="invalid_text")
        if message.role in ("tool", "function"):
            msg = (
                f"message {number} has role {message.role!r}: mentee has no tools; send what a tool returned as a "
                "user message"
            )
            raise ApiError(400, msg, code="unsupported_role")
        role = "system" if message.role == "developer" else message.role
        conversation.append(ChatMessage(role, text))
    if conversation[-1].role != "user":
        raise ApiError(400, "the last message must be the user's question", code="last_message_not_user")
    question = conversation[-1].content.strip()
    if not question:
        raise ApiError(400, "the question (the last user message) is empty", code="empty_question")
    if len(question) > max_question_chars:
        msg = f"the question is {len(question)} characters long; the limit is {max_question_chars} (question_max_chars)"
        raise ApiError(413, msg, code="question_too_long")
    return conversation


def _is_unicode(text: str) -> bool:
    # JSON may escape lone surrogates ("\\ud800"), which no tokenizer, embedder or store can encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- responses -----------------------------------------------------------------------------------------------


def usage(routed: RoutedAnswer) -> dict[str, int]:
    return {
        "prompt_tokens": routed.tokens_in,
        "completion_tokens": routed.tokens_out,
        "total_tokens": routed.tokens_in + routed.tokens_out,
    }


def completion(completion_id: str, model: str, routed: RoutedAnswer) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": routed.text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(routed),
        "mentee": routed.info(),
    }
