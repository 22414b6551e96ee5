"""mentee's server side: config, the student engine, teachers, the router, the loop (``Mentee``) and the API.

Public names are imported lazily, so ``import mentee.server`` (and ``mentee --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.lazy import lazy_attributes

if TYPE_CHECKING:
    from ..memory.retriever import MemoryRetriever
    from .api.app import create_app
    from .clients.langchain_chat import ChatMentee
    from .clients.local_chat import LocalChatMentee
    from .core.config import Settings, load_settings
    from .core.errors import (
        ConfigError,
        InvalidRequestError,
        MenteeError,
        ModelPrepareError,
        StudentError,
    )
    from .service import Mentee
    from .serving.router import RoutedAnswer, Switches
    from .student.client import Generation, StreamChunk, Student, TokenLogprob
    from .student.models import prepare_embedded_student
    from .student.prompting import ChatMessage

_EXPORTS = {
    "ChatMentee": "mentee.server.clients.langchain_chat",
    "ChatMessage": "mentee.server.student.prompting",
    "ConfigError": "mentee.server.core.errors",
    "Generation": "mentee.server.student.client",
    "InvalidRequestError": "mentee.server.core.errors",
    "LocalChatMentee": "mentee.server.clients.local_chat",
    "Mentee": "mentee.server.service",
    "MemoryRetriever": "mentee.memory.retriever",
    "MenteeError": "mentee.server.core.errors",
    "ModelPrepareError": "mentee.server.core.errors",
    "RoutedAnswer": "mentee.server.serving.router",
    "Settings": "mentee.server.core.config",
    "StreamChunk": "mentee.server.student.client",
    "Student": "mentee.server.student.client",
    "StudentError": "mentee.server.core.errors",
    "Switches": "mentee.server.serving.router",
    "TokenLogprob": "mentee.server.student.client",
    "create_app": "mentee.server.api.app",
    "load_settings": "mentee.server.core.config",
    "prepare_embedded_student": "mentee.server.student.models",
}

__all__ = [
    "ChatMentee",
    "ChatMessage",
    "ConfigError",
    "Generation",
    "InvalidRequestError",
    "LocalChatMentee",
    "MemoryRetriever",
    "Mentee",
    "MenteeError",
    "ModelPrepareError",
    "RoutedAnswer",
    "Settings",
    "StreamChunk",
    "Student",
    "StudentError",
    "Switches",
    "TokenLogprob",
    "create_app",
    "load_settings",
    "prepare_embedded_student",
]


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
