from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentee.server.core.errors import ConfigError, InvalidRequestError
from mentee.server.student.prompting import (
    BareQAPromptFormat,
    ChatMessage,
    ChatTemplatePromptFormat,
    QAPromptFormat,
    adapter_prompt_format,
    detect_prompt_format,
    prompt_format,
)


def test_qa_prompt_is_few_shot_and_stops_at_end_of_line() -> None:
    request = QAPromptFormat().build([ChatMessage("user", "What is the capital of France?")])
    assert request.endpoint == "completions"
    assert request.stop == ("\n",)
    assert request.prompt.startswith("Q: What is the capital of Italy?\nA: Rome\n")
    assert request.prompt.endswith("\nQ: What is the capital of France?\nA:")


def test_adapters_of_a_qa_student_are_asked_the_question_alone_unless_few_shot() -> None:
    conversation = [ChatMessage("user", "Who wrote\nHamlet?"), ChatMessage("assistant", "Shakespeare")]
    conversation.append(ChatMessage("user", "When was he born?"))
    request = BareQAPromptFormat().build(conversation)
    assert request.prompt == "Q: Who wrote Hamlet?\nA: Shakespeare\nQ: When was he born?\nA:"
    assert request.stop == ("\n",) and request.endpoint == "completions"
    assert prompt_format("qa-bare").name == "qa-bare"
    assert adapter_prompt_format(QAPromptFormat(), few_shot=False).name == "qa-bare"
    assert adapter_prompt_format(QAPromptFormat(), few_shot=True).name == "qa"
    assert adapter_prompt_format(ChatTemplatePromptFormat(), few_shot=False).name == "chat"


def test_qa_prompt_carries_history_on_single_lines() -> None:
    conversation = [
        ChatMessage("system", "be brief"),
        ChatMessage("user", "Who wrote\nHamlet?"),
        ChatMessage("assistant", "Shakespeare"),
        ChatMessage("user", "And"),
        ChatMessage("user", "when was he born?"),
    ]
    prompt = QAPromptFormat().build(conversation).prompt
    assert "be brief" not in prompt
    assert prompt.endswith("Q: Who wrote Hamlet?\nA: Shakespeare\nQ: And when was he born?\nA:")


def test_chat_format_passes_messages_to_the_template() -> None:
    request = ChatTemplatePromptFormat().build([ChatMessage("system", "s"), ChatMessage("user", "q")])
    assert request.endpoint == "chat"
    assert request.messages == ({"role": "system", "content": "s"}, {"role": "user", "content": "q"})


@pytest.mark.parametrize("fmt", [QAPromptFormat(), ChatTemplatePromptFormat()])
def test_conversation_must_end_with_user(fmt: QAPromptFormat) -> None:
    with pytest.raises(InvalidRequestError, match="end with a user message"):
        fmt.build([ChatMessage("user", "q"), ChatMessage("assistant", "a")])
    with pytest.raises(InvalidRequestError):
        fmt.build([])


def test_bad_messages_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="role"):
        ChatMessage("robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="text"):
        ChatMessage("user", b"hi")  # type: ignore[arg-type]


def test_detection_follows_the_model_folder(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>"}))
    assert detect_prompt_format(plain).name == "qa"

    templated = tmp_path / "templated"
    templated.mkdir()
    (templated / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert detect_prompt_format(templated).name == "chat"

    jinja = tmp_path / "jinja"
    jinja.mkdir()
    (jinja / "chat_template.jinja").write_text("{{ messages }}")
    assert detect_prompt_format(jinja).name == "chat"

    # What mentee recorded when preparing a model wins (the embedded Gemma is a base model).
    (jinja / "mentee-model.json").write_text(json.dumps({"prompt_format": "qa"}))
    assert detect_prompt_format(jinja).name == "qa"


def test_unknown_format_is_named() -> None:
    with pytest.raises(ConfigError, match="'fancy'"):
        prompt_format("fancy")
