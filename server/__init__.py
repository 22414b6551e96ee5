"""mentee's server side: config, the student engine, teachers, the router, the loop (``Mentee``) and the API.

Public names are imported lazily, so ``import mentee.server`` (and ``mentee --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mentee.server.lazy import lazy_attributes

if TYPE_CHECKING:
    from mentee.server.api import create_app
    from mentee.server.config import Settings, load_settings
    from mentee.server.errors import (
        ConfigError,
        InvalidRequestError,
        MenteeError,
        ModelPrepareError,
        StudentError,
    )
    from mentee.server.langchain_chat import ChatMentee
    from mentee.server.local_chat import LocalChatMentee
    from mentee.server.models import prepare_embedded_student
    from mentee.server.prompting import ChatMessage
    from mentee.server.retriever import MemoryRetriever
    from mentee.server.router import RoutedAnswer, Switches
    from mentee.server.service import Mentee
    from mentee.server.student import Generation, StreamChunk, Student, TokenLogprob

_EXPORTS = {
    "ChatMentee": "mentee.server.langchain_chat",
    "ChatMessage": "mentee.server.prompting",
    "ConfigError": "mentee.server.errors",
    "Generation": "mentee.server.student",
    "InvalidRequestError": "mentee.server.errors",
    "LocalChatMentee": "mentee.server.local_chat",
    "Mentee": "mentee.server.service",
    "MemoryRetriever": "mentee.server.retriever",
    "MenteeError": "mentee.server.errors",
    "ModelPrepareError": "mentee.server.errors",
    "RoutedAnswer": "mentee.server.router",
    "Settings": "mentee.server.config",
    "StreamChunk": "mentee.server.student",
    "Student": "mentee.server.student",
    "StudentError": "mentee.server.errors",
    "Switches": "mentee.server.router",
    "TokenLogprob": "mentee.server.student",
    "create_app": "mentee.server.api",
    "load_settings": "mentee.server.config",
    "prepare_embedded_student": "mentee.server.models",
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
