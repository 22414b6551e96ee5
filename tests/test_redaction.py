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


def test_cards_ibans_and_ssns_are_found_by_their_checksums() -> None:
    """Before (issue 18): none of these was redacted. Checksums (python-stdnum) keep look-alikes as they are."""
    redactor = Redactor()
    found = {
        "pay with 4111 1111 1111 1111 please": "pay with [CARD] please",
        "amex 3782-822463-10005, thanks": "amex [CARD], thanks",
        "my IBAN DE89 3704 0044 0532 0130 00 IS THIS ONE": "my IBAN [IBAN] IS THIS ONE",
        "send it to GB82WEST12345698765432 today": "send it to [IBAN] today",
        "SSN 123-45-6789 on the form": "SSN [SSN] on the form",
    }
    for text, redacted in found.items():
        assert redactor.redact(text).text == redacted, text
    assert redactor.snapshot() == {"card": 2, "iban": 2, "ssn": 1}
    kept = [
        "pay with 4111 1111 1111 1112 please",  # Luhn fails
        "the number 1234 5678 9012 3456",  # Luhn fails
        "DE89 3704 0044 0532 0130 01",  # mod 97 fails
        "SSN 000-12-3456 on file",  # never issued
        "What is the ISBN 978-3-16-148410-0 about?",
    ]
    for text in kept:
        assert redactor.redact(text).text == text


def test_keys_of_other_vendors_and_bare_secrets_are_found() -> None:
    """detect-secrets' plugin shapes, and a 40-character AWS secret key with nothing beside it (entropy)."""
    redactor = Redactor()
    for secret in (
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # a bare AWS secret access key
        "glpat-abcdefghij0123456789",  # GitLab
        "SK0123456789abcdef0123456789abcdef",  # Twilio
        "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",  # SendGrid
        "AccountKey=" + "a1B2" * 22,  # Azure storage
    ):
        out = redactor.redact(f"is {secret} leaked?")
        assert secret not in out.text and out.text.count("[SECRET]") == 1, out.text
    url = redactor.redact("fetch https://bob:hunter2@example.com/file")
    assert "hunter2" not in url.text and "[SECRET]" in url.text
    for text in (
        "commit e83c5163316f89bfbde7d9ab23ca2e25604af290 broke the build",  # a hash is not a key
        "id 2f4e1c0a-1b2c-4d5e-8f90-123456789abc",
        "Is pneumonoultramicroscopicsilicovolcanoconiosis a real word?",
    ):
        assert redactor.redact(text).text == text


def test_national_phone_numbers_of_other_regions_are_found() -> None:
    """Before: with the US as the region, "030 123456" (Berlin) and "01 23 45 67 89" (Paris) went to the teacher.
    Every default region's example fixed-line and mobile numbers, national and international formats."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    from mentee.server.core.redaction import DEFAULT_OTHER_PHONE_REGIONS

    redactor = Redactor()
    checked = 0
    for region in ("US", *DEFAULT_OTHER_PHONE_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            for style in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
                written = phonenumbers.format_number(number, style)
                assert redactor.redact(f"call {written} today").text == "call [PHONE] today", (region, written)
                checked += 1
    assert checked == 4 * (1 + len(DEFAULT_OTHER_PHONE_REGIONS))
    assert Redactor(phone_other_regions=()).redact("ruf 030 123456 an").text == "ruf 030 123456 an"


def test_real_questions_pass_unchanged() -> None:
    """The measurement that chose the default regions and rules: 17,610 real questions (NQ and TriviaQA dev, the
    near-duplicate pairs, full of years, ranges, scores and amounts), none changed."""
    root = Path(__file__).resolve().parents[1] / "data"
    questions = []
    for name, keys in (
        ("nq-open-dev", ("question",)),
        ("triviaqa-dev", ("question",)),
        ("near-duplicate-pairs", ("q1", "q2")),
    ):
        with open(root / f"{name}.jsonl") as lines:
            questions += [json.loads(line)[key] for line in lines for key in keys]
    redactor = Redactor()
    changed = [q for q in questions if redactor.redact(q).text != q]
    assert len(questions) == 17_610 and changed == []


def test_what_the_budget_leaves_out_is_never_redacted() -> None:
    """Before: the whole conversation was redacted, then cut to the teacher's budget: 64 messages of 8,000 digits
    cost the redactor 3.5 s per teacher call; now it sees at most the budget (0.1 s)."""
    from collections.abc import Sequence

    from mentee.server.teachers import GuardedTeacher, TaughtItem, Teacher, TeacherAnswer, TeacherLimits

    class Echo(Teacher):
        name = "teacher:echo"

        def ask(self, messages: Sequence[ChatMessage], *, context: Sequence[TaughtItem] = ()) -> TeacherAnswer:
            return TeacherAnswer(text="Lima", model="big")

    class Counting(Redactor):
        seen = 0

        def redact(self, text: str):  # type: ignore[no-untyped-def]
            Counting.seen += len(text)
            return super().redact(text)

    teacher = GuardedTeacher(Echo(), TeacherLimits(max_input_tokens=4000), redactor=Counting())
    turns = [ChatMessage("user" if i % 2 == 0 else "assistant", "12345 " * 1333) for i in range(63)]
    teacher.ask([*turns, ChatMessage("user", "What is the capital of Peru?")])
    assert Counting.seen <= 4000 * 4


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
    with pytest.raises(ConfigError, match=r"redact_phone_other_regions .*'XX'"):
        load_settings(redact_phone_other_regions=["DE", "XX"])
    assert load_settings(redact_phone_other_regions=["de"]).redact_phone_other_regions == ["DE"]


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
