"""How a conversation is put to the student: a property of the model, never something a user picks by hand.

A base model (like the embedded Gemma 3 270M) answers well only to a plain few-shot ``Q:``/``A:`` prompt and
stops at the end of the line; a model with a chat template gets its own template (applied by vLLM's chat
endpoint). :func:`detect_prompt_format` looks at the model folder to decide.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ConfigError, InvalidRequestError

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")
MANIFEST_NAME = "mentee-model.json"


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            msg = f"message role must be one of {_ROLES}, got {self.role!r}"
            raise InvalidRequestError(msg)
        if not isinstance(self.content, str):
            msg = f"message content must be text, got {type(self.content).__name__}"
            raise InvalidRequestError(msg)


@dataclass(frozen=True)
class StudentRequest:
    """What one generation sends to vLLM: a completion prompt or chat messages, with the format's stops."""

    endpoint: Literal["completions", "chat"]
    prompt: str = ""
    messages: tuple[dict[str, str], ...] = ()
    stop: tuple[str, ...] = field(default_factory=tuple)


class PromptFormat(ABC):
    """Turns a conversation into the request the student model understands."""

    name: str

    @abstractmethod
    def build(self, messages: list[ChatMessage]) -> StudentRequest:
        """The request for the student's next assistant turn after ``messages``."""


class QAPromptFormat(PromptFormat):
    """Few-shot ``Q: …`` / ``A: …`` lines for base models; the answer ends at the end of its line."""

    name = "qa"
    examples: tuple[tuple[str, str], ...] = (
        ("What is the capital of Italy?", "Rome"),
        ("Who wrote the play Hamlet?", "William Shakespeare"),
        ("How many legs does a spider have?", "Eight"),
    )

    def build(self, messages: list[ChatMessage]) -> StudentRequest:
        turns = [m for m in messages if m.role != "system"]
        if not turns or turns[-1].role != "user":
            msg = "the conversation must end with a user message"
            raise InvalidRequestError(msg)
        lines = [f"Q: {q}\nA: {a}" for q, a in self.examples]
        for role, text in _merge_consecutive(turns):
            lines.append(f"Q: {text}" if role == "user" else f"A: {text}")
        return StudentRequest(endpoint="completions", prompt="\n".join(lines) + "\nA:", stop=("\n",))


class BareQAPromptFormat(QAPromptFormat):
    """``Q: …`` / ``A: …`` lines without the few-shot examples, for LoRA adapters of a Q/A student: an adapter
    trained on a round's answers has learned the pattern, so it is trained, gated and served on the question
    alone — a third of the tokens of the few-shot prompt, and a round about twice as fast."""

    name = "qa-bare"
    examples = ()


class ChatTemplatePromptFormat(PromptFormat):
    """The model's own chat template, applied by vLLM's ``/v1/chat/completions``."""

    name = "chat"

    def build(self, messages: list[ChatMessage]) -> StudentRequest:
        if not messages or messages[-1].role != "user":
            msg = "the conversation must end with a user message"
            raise InvalidRequestError(msg)
        return StudentRequest(endpoint="chat", messages=tuple({"role": m.role, "content": m.content} for m in messages))


PROMPT_FORMATS: dict[str, type[PromptFormat]] = {
    "qa": QAPromptFormat,
    "qa-bare": BareQAPromptFormat,
    "chat": ChatTemplatePromptFormat,
}


def prompt_format(name: str) -> PromptFormat:
    """The prompt format called ``name`` ('qa', 'qa-bare' or 'chat')."""
    try:
        return PROMPT_FORMATS[name]()
    except KeyError:
        msg = f"unknown prompt format {name!r}; choose one of {sorted(PROMPT_FORMATS)}"
        raise ConfigError(msg) from None


def adapter_prompt_format(student_format: PromptFormat, *, few_shot: bool) -> PromptFormat:
    """The format a new adapter of a student in ``student_format`` is trained, gated and served in: a Q/A
    student's adapters without the few-shot examples unless ``few_shot``; a chat student's in its template."""
    if isinstance(student_format, QAPromptFormat) and not few_shot:
        return BareQAPromptFormat()
    return student_format


def detect_prompt_format(model_dir: Path) -> PromptFormat:
    """The format a model folder calls for: what mentee recorded when preparing it, else 'chat' if it has a
    chat template, else 'qa'."""
    manifest = model_dir / MANIFEST_NAME
    if manifest.is_file():
        recorded = _read_json(manifest).get("prompt_format")
        if recorded:
            return prompt_format(recorded)
    if has_chat_template(model_dir):
        return ChatTemplatePromptFormat()
    return QAPromptFormat()


def has_chat_template(model_dir: Path) -> bool:
    """Whether a Hugging Face model folder carries a chat template (file or tokenizer_config entry)."""
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return True
    return bool(_read_json(model_dir / "tokenizer_config.json").get("chat_template"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _one_line(text: str) -> str:
    # A newline inside a question would end the Q/A pattern early.
    return re.sub(r"\s+", " ", text).strip()


def _merge_consecutive(turns: list[ChatMessage]) -> list[tuple[str, str]]:
    # Two user turns in a row become one question, so the Q/A rhythm the base model follows is kept.
    merged: list[tuple[str, str]] = []
    for message in turns:
        text = _one_line(message.content)
        if merged and merged[-1][0] == message.role:
            merged[-1] = (message.role, f"{merged[-1][1]} {text}".strip())
        else:
            merged.append((message.role, text))
    return merged
