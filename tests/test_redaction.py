"""Redaction before the teacher: the patterns, the settings, and a planted secret that never reaches a real HTTP
teacher (mentee with a scripted student, the real memory and the OpenAI-compatible teacher made from settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mentee.memory.embedder import Embedder
from mentee.memory.store import Memory
from mentee.server.core.config import load_settings
from mentee.server.core.errors import ConfigError
from mentee.server.core.redaction import Redactor
from mentee.server.service import Mentee
from mentee.server.student.prompting import ChatMessage
from tests.teacher_server import running_teacher
from tests.test_api import KnowingStudent

SECRETS = {
    "openai": "sk-proj-4fJ8kLmN2pQrStUvWxYz0123456789AbCd",
    "stripe": "sk_live_51HxYzAbCdEfGhIjKlMnOpQr",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "hf": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
}


def test_each_kind_is_replaced_and_counted() -> None:
    redactor = Redactor()
    for name, secret in SECRETS.items():
        out = redactor.redact(f"my {name} credential is {secret}, what now?")
        assert secret not in out.text and "[SECRET]" in out.text, (name, out.text)
    assert redactor.redact("Authorization: Bearer abcdefghijklmnop0123456789").text == "Authorization: [SECRET]"
    assert redactor.redact("the password: hunter2!! ok").text == "the [SECRET] ok"
    assert redactor.redact("my api key is abc123def and token=xyz789").text == "my [SECRET] and [SECRET]"
    key_block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKC\n-----END RSA PRIVATE KEY-----"
    assert redactor.redact(f"here:\n{key_block}\nthanks").text == "here:\n[SECRET]\nthanks"
    mail = redactor.redact("write to jane.doe+news@mail.example.co.uk or bob@example.org")
    assert mail.text == "write to [EMAIL] or [EMAIL]" and mail.counts == {"email": 2}
    phones = redactor.redact("call +1 415-555-0134, (415) 555-0199 or +49 30 901820")
    assert phones.text == "call [PHONE], [PHONE] or [PHONE]" and phones.counts == {"phone": 3}
    assert Redactor(phone_region="GB").redact("ring 020 7946 0958").text == "ring [PHONE]"
    assert redactor.snapshot()["secret"] == len(SECRETS) + 5 and redactor.snapshot()["phone"] == 3


def test_ordinary_questions_pass_unchanged() -> None:
    redactor = Redactor()
    questions = [
        "When did World War 2 end, in 1945?",
        "How many people lived in Tokyo in 2020, about 13,960,000?",
        "What is the ISBN 978-3-16-148410-0 about?",
        "Who won the 1966 FIFA World Cup final 4-2?",
        "What is a token in a language model?",
        "Is the secret of the pyramids known?",
        "Which song says the secret is love, and the token is a kiss?",
        "What is the capital of France?",
        "What disease killed approximately 40% of Europe's population in 1346-1353?",
    ]
    for question in questions:
        assert redactor.redact(question).text == question
    assert redactor.snapshot() == {}


def test_custom_patterns_and_bad_settings() -> None:
    redactor = Redactor((), {"employee_id": r"EMP-[0-9]{6}"})
    out = redactor.redact("Is EMP-123456 on leave? Mail a@b.io")
    assert out.text == "Is [EMPLOYEE_ID] on leave? Mail a@b.io" and out.counts == {"employee_id": 1}
    with pytest.raises(ConfigError, match=r"redact_patterns .*not a valid regular expression"):
        load_settings(redact_patterns={"broken": "("})
    with pytest.raises(ConfigError, match="redact_kinds"):
        load_settings(redact_kinds=["names"])
    with pytest.raises(ConfigError, match="redact_phone_region"):
        load_settings(redact_phone_region="Germany")


def test_a_planted_secret_never_reaches_the_teacher(tmp_path: Path, embedder: Embedder) -> None:
    question = (
        f"My API key is {SECRETS['openai']}, my mail jane@example.com and my phone +1 415 555 0134. "
        "What is the capital of Peru?"
    )
    with running_teacher(answer="Lima") as (url, handler):
        settings = load_settings(home=tmp_path / "home", teacher_url=url, teacher_model="teacher", teacher_retries=0)
        with Mentee(
            settings, student=KnowingStudent(), memory=Memory(path=tmp_path / "memory", embedder=embedder)
        ) as m:
            routed = m.answer(question)
            # A follow-up rewrite and a later context item carry the question again: redacted too.
            follow_up = f"and token {SECRETS['github']}, which river runs there?"
            m.answer([ChatMessage("user", question), ChatMessage("assistant", "Lima"), ChatMessage("user", follow_up)])
            stats = m.stats()
    assert routed.source == "teacher" and routed.text == "Lima"
    sent = json.dumps(handler.received)
    assert handler.received and all(s not in sent for s in SECRETS.values())
    assert "jane@example.com" not in sent and "415 555 0134" not in sent
    assert "[SECRET]" in sent and "[EMAIL]" in sent and "[PHONE]" in sent and "capital of Peru" in sent
    redactions = stats["teacher"]["redactions"]
    assert redactions["secret"] >= 2 and redactions["email"] >= 1 and redactions["phone"] >= 1
    off = load_settings(redact_kinds=[], teacher_url="http://127.0.0.1:9", teacher_model="t")
    from mentee.server.teachers import make_teacher

    assert make_teacher(off).redactor is None  # type: ignore[union-attr]
