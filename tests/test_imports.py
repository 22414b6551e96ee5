"""The public surface of mentee.server is small, sorted, pinned, and importable without heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import mentee.server

EXPECTED_ALL = [
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


def test_all_is_sorted_and_pinned() -> None:
    assert mentee.server.__all__ == EXPECTED_ALL
    assert sorted(mentee.server.__all__) == mentee.server.__all__


def test_every_public_name_resolves() -> None:
    for name in mentee.server.__all__:
        assert getattr(mentee.server, name) is not None


def test_public_import_is_light() -> None:
    code = (
        "import sys\n"
        "from mentee.server import Mentee, Student, load_settings\n"
        "print(sorted({'torch', 'vllm', 'transformers', 'peft'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
