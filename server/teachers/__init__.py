"""Teacher backends (one per file) behind one base, and the factory that picks one from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from .base import (
    ChatTeacher,
    GuardedTeacher,
    Ledger,
    TaughtItem,
    Teacher,
    TeacherAnswer,
    TeacherBudgetError,
    TeacherError,
    TeacherLimits,
    TeacherUnavailableError,
    unusable_reason,
)

if TYPE_CHECKING:
    from ...memory.embedder import Embedder
    from ..core.config import Settings

__all__ = [
    "ChatTeacher",
    "GuardedTeacher",
    "Ledger",
    "TaughtItem",
    "Teacher",
    "TeacherAnswer",
    "TeacherBudgetError",
    "TeacherError",
    "TeacherLimits",
    "TeacherUnavailableError",
    "make_teacher",
    "unusable_reason",
]


def make_teacher(
    settings: Settings, *, chat_model: Any = None, embedder: Embedder | None = None
) -> GuardedTeacher | None:
    """The configured teacher, guarded; ``None`` when no teacher is configured.

    Precedence: a LangChain chat model passed in code, ``teacher_langchain``, ``teacher_url``, ``teacher_qa_file``.
    """
    inner: Teacher
    if chat_model is not None or settings.teacher_langchain:
        from .langchain_model import LangChainTeacher

        inner = LangChainTeacher(chat_model if chat_model is not None else settings.teacher_langchain)
    elif settings.teacher_url:
        from .openai_compatible import OpenAICompatibleTeacher

        if not settings.teacher_model:
            msg = f"teacher_url is set ({settings.teacher_url}) but teacher_model is empty (MENTEE_TEACHER_MODEL)"
            raise ConfigError(msg)
        key = settings.teacher_api_key.get_secret_value() if settings.teacher_api_key else None
        inner = OpenAICompatibleTeacher(
            settings.teacher_url,
            settings.teacher_model,
            api_key=key,
            timeout_s=settings.teacher_timeout_s,
            max_tokens=settings.teacher_max_tokens,
        )
    elif settings.teacher_qa_file:
        from ...memory.embedder import SentenceTransformerEmbedder
        from .reference import ReferenceTeacher

        inner = ReferenceTeacher(
            Path(settings.teacher_qa_file),
            embedder or SentenceTransformerEmbedder.from_settings(settings),
            cache_dir=settings.home / "teachers",
            max_distance=settings.memory_max_distance,
        )
    else:
        return None
    limits = TeacherLimits.from_settings(settings)
    redactor = None
    if settings.redact_kinds or settings.redact_patterns:
        from ..core.redaction import Redactor

        redactor = Redactor(
            settings.redact_kinds,
            settings.redact_patterns,
            phone_region=settings.redact_phone_region,
            phone_other_regions=settings.redact_phone_other_regions,
        )
    return GuardedTeacher(inner, limits, redactor=redactor)
