"""Redaction: what mentee sends to a teacher passes through here first, so personal data and secrets in a user's
question never leave the premises.

Built-in kinds: ``email`` (addresses), ``phone`` (numbers found by Google's libphonenumber, through the
``phonenumbers`` package: international ones anywhere, national ones in ``phone_region``'s format), ``secret``
(API keys and tokens of well-known shapes, bearer tokens, JSON web tokens, private-key blocks, and
``password=…``-style assignments); plus any named regular expressions of the configuration. Each match becomes
``[KIND]`` and is counted by kind.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ConfigError

BUILTIN_KINDS = ("email", "phone", "secret")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Shapes of keys and tokens that are secrets wherever they appear (prefixes documented by each vendor).
_SECRETS = [
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
    r"\b(?:sk|pk|rk)-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic and similar keys
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{30,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JSON web tokens
    r"(?i:\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*)",
    r"(?i:\b(?:password|passwd|pwd|passphrase|api[_ -]?key|access[_ -]?token|auth[_ -]?token|secret[_ -]?key)"
    r"\s*(?:[:=]|\bis\b)\s*\S+)",
    r"(?i:\b(?:secret|token)\s*[:=]\s*\S+)",  # "the secret is out" is language, "token=…" is not
]
_SECRET = re.compile("|".join(f"(?:{pattern})" for pattern in _SECRETS))


@dataclass(frozen=True)
class Redacted:
    text: str
    counts: Mapping[str, int]


class Redactor:
    """Replaces what matches the chosen kinds with ``[KIND]``; keeps a running count per kind (thread-safe)."""

    def __init__(
        self,
        kinds: Iterable[str] = BUILTIN_KINDS,
        custom: Mapping[str, str] | None = None,
        *,
        phone_region: str = "US",
    ) -> None:
        self.kinds = tuple(kinds)
        unknown = [k for k in self.kinds if k not in BUILTIN_KINDS]
        if unknown:
            msg = f"unknown redaction kind(s) {', '.join(map(repr, unknown))}; built in: {', '.join(BUILTIN_KINDS)}"
            raise ConfigError(msg)
        self.custom: dict[str, re.Pattern[str]] = {}
        for name, pattern in (custom or {}).items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ConfigError(f"redaction pattern name {name!r} must be lower-case letters, digits and _")
            try:
                self.custom[name] = re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"redaction pattern {name!r} is not a valid regular expression: {e}") from e
        self.phone_region = phone_region.upper()
        self.totals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def redact(self, text: str) -> Redacted:
        counts: Counter[str] = Counter()
        # Secrets first: a key may contain what looks like an e-mail address or a phone number.
        if "secret" in self.kinds:
            text = self._sub(_SECRET, "secret", text, counts)
        for name, pattern in self.custom.items():
            text = self._sub(pattern, name, text, counts)
        if "email" in self.kinds:
            text = self._sub(_EMAIL, "email", text, counts)
        if "phone" in self.kinds:
            text = self._phones(text, counts)
        if counts:
            with self._lock:
                self.totals.update(counts)
        return Redacted(text, dict(counts))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.totals)

    @staticmethod
    def _sub(pattern: re.Pattern[str], kind: str, text: str, counts: Counter[str]) -> str:
        replaced, found = pattern.subn(f"[{kind.upper()}]", text)
        if found:
            counts[kind] += found
        return replaced

    def _phones(self, text: str, counts: Counter[str]) -> str:
        import phonenumbers

        # VALID, not POSSIBLE: a number must fit a real numbering plan, so "in 1346-1353" stays a span of years.
        matches = list(phonenumbers.PhoneNumberMatcher(text, self.phone_region, leniency=phonenumbers.Leniency.VALID))
        for match in reversed(matches):  # from the end, so earlier offsets stay valid
            text = text[: match.start] + "[PHONE]" + text[match.end :]
        if matches:
            counts["phone"] += len(matches)
        return text
