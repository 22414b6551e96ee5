"""Redaction: what mentee sends to a teacher passes through here first, so personal data and secrets in a user's
question never leave the premises (and, since memory keeps the question as the teacher saw it, are never stored).

Built-in kinds, each found by a maintained detector where one exists rather than by a growing list of regexes:

- ``secret``: the key and token shapes of ``detect-secrets``' plugins (AWS, Azure, GitHub, GitLab, Slack, Stripe,
  Twilio, SendGrid, npm, PyPI, JSON web tokens, ``user:password@`` in URLs, …), a few it lacks (today's OpenAI and
  Anthropic keys, Google and Hugging Face keys, whole private-key blocks, bearer tokens, ``password=…``-style
  assignments), and bare high-entropy strings of 32+ characters (``detect-secrets``' base64 entropy and limit),
  which catches a pasted 40-character AWS secret key with no name beside it;
- ``card``: payment card numbers (13-19 digits, a card network's prefix, the Luhn checksum of ``python-stdnum``);
- ``iban``: IBANs (``python-stdnum``: the country's length and the mod-97 checksum);
- ``ssn``: US social security numbers written ``123-45-6789`` (``python-stdnum``'s validity rules);
- ``email``: addresses;
- ``phone``: numbers found by Google's libphonenumber (``phonenumbers``): international ones anywhere, national
  ones in the format of ``phone_region`` and of each of ``phone_other_regions``.

plus any named regular expressions of the configuration. Each match becomes ``[KIND]`` and is counted by kind.
Checksums keep ordinary numbers (years, ISBNs, populations) as they are; tests/test_redaction.py measures that on
real questions.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from .errors import ConfigError

BUILTIN_KINDS = ("email", "phone", "secret", "card", "iban", "ssn")
# National formats recognised besides the home region's, chosen on 17,610 real questions (NQ and TriviaQA dev,
# the near-duplicate pairs): with the two rules below (7 digits or more, not a span of years) none of them changes
# one. Small numbering plans (the Caribbean's, Syria's, ...) read year ranges such as "1346-1353" as numbers.
DEFAULT_OTHER_PHONE_REGIONS = ("GB", "DE", "FR", "IN", "ES", "IT", "BR", "JP", "CN", "AU", "CA", "NL", "MX")
# Candidate numbers libphonenumber tries per other region and text: its own knob, so a text made of numbers costs
# a bounded time in every region beyond the home one (whose matcher is not capped).
_OTHER_REGION_TRIES = 100
# Germany's plan has 4-digit numbers ("in 1642" would be one): a number of another region needs 7 digits or more,
# as subscriber numbers in national format have.
_MIN_OTHER_REGION_DIGITS = 7

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# What detect-secrets has no plugin for, or matches only in part (its private-key plugin finds the header line,
# its JWT pattern stops before the signature, its OpenAI pattern knows only the legacy key shape).
_OWN_SECRETS = [
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
    r"\b(?:sk|pk|rk)-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic and similar keys
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe, test keys included
    r"\bgithub_pat_[A-Za-z0-9_]{30,}",
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JSON web tokens, signature included
    r"(?i:\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*)",
    r"(?i:\b(?:password|passwd|pwd|passphrase|api[_ -]?key|access[_ -]?token|auth[_ -]?token|secret[_ -]?key)"
    r"\s*(?:[:=]|\bis\b)\s*\S+)",
    r"(?i:\b(?:secret|token)\s*[:=]\s*\S+)",  # "the secret is out" is language, "token=…" is not
]
_OWN_SECRET = re.compile("|".join(f"(?:{pattern})" for pattern in _OWN_SECRETS))
# detect-secrets plugins whose shapes are not secrets in a chat question (a public IP address), that _OWN_SECRETS
# covers whole, or whose pattern is quadratic on one long line (npm's "//.+/:_authToken=": 114 ms on 16 KB of
# "://a:b"; detect-secrets scans files line by line, mentee whole messages; "authToken=…" is caught above).
_SKIPPED_PLUGINS = frozenset({"IPPublicDetector", "PrivateKeyDetector", "NpmDetector"})
# Delimiters some detect-secrets patterns match around the secret itself (Artifactory's "(?:\s|=|:|"|^)").
_AROUND = " \t\r\n=:\"'"
# A bare token that may be a key: base64 and URL-safe characters, 32 or more (below 32 characters even a random
# string cannot reach the entropy limit), with a digit and a letter.
_BARE_TOKEN = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{32,}={0,2}(?![\w+/=-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6)")  # Visa, Mastercard, Amex, Diners/JCB, Discover…
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")
# "1346-1353", "(1782-1840": spans of years that small numbering plans take for phone numbers.
_YEAR_RANGE = re.compile(r"^\(?\s*(?:1\d{3}|20\d{2})\s*[-\u2013]\s*(?:1\d{3}|20\d{2})\s*\)?$")


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
        phone_other_regions: Iterable[str] = DEFAULT_OTHER_PHONE_REGIONS,
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
        self.phone_region = check_phone_region(phone_region)
        self.phone_other_regions = tuple(
            r for r in dict.fromkeys(map(check_phone_region, phone_other_regions)) if r != self.phone_region
        )
        self.totals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def redact(self, text: str) -> Redacted:
        counts: Counter[str] = Counter()
        # Secrets first (a key may contain what looks like an address or a number), then the checksummed numbers
        # (a card number is also a phone number to libphonenumber), phone numbers last.
        if "secret" in self.kinds:
            text = _replace(text, "secret", _secret_spans(text), counts)
        for name, pattern in self.custom.items():
            text = _replace(text, name, (m.span() for m in pattern.finditer(text)), counts)
        if "email" in self.kinds:
            text = _replace(text, "email", (m.span() for m in _EMAIL.finditer(text)), counts)
        if "card" in self.kinds:
            text = _replace(text, "card", _checked(_CARD, text, _is_card), counts)
        if "iban" in self.kinds:
            text = _replace(text, "iban", _iban_spans(text), counts)
        if "ssn" in self.kinds:
            text = _replace(text, "ssn", _checked(_SSN, text, _is_ssn), counts)
        if "phone" in self.kinds:
            text = self._phones(text, counts)
        if counts:
            with self._lock:
                self.totals.update(counts)
        return Redacted(text, dict(counts))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.totals)

    def _phones(self, text: str, counts: Counter[str]) -> str:
        """Phone numbers: the home region's matcher first (international numbers anywhere, national ones in its
        format), then the other regions' on what is left, their spans merged (one region may see a number's tail
        as a whole number where another sees it all), each at most ``_OTHER_REGION_TRIES`` invalid candidates."""
        import phonenumbers

        # VALID, not POSSIBLE: a number must fit a real numbering plan, so "in 1346-1353" stays a span of years.
        valid = phonenumbers.Leniency.VALID
        found = phonenumbers.PhoneNumberMatcher(text, self.phone_region, leniency=valid)
        text = _replace(text, "phone", [(m.start, m.end) for m in found], counts)
        if not self.phone_other_regions or not any(c.isdigit() for c in text):
            return text
        spans = []
        for region in self.phone_other_regions:
            for match in phonenumbers.PhoneNumberMatcher(
                text,
                region,
                leniency=valid,
                max_tries=_OTHER_REGION_TRIES,
                min_candidate_length=_MIN_OTHER_REGION_DIGITS,
            ):
                raw = match.raw_string
                if sum(c.isdigit() for c in raw) >= _MIN_OTHER_REGION_DIGITS and not _YEAR_RANGE.match(raw):
                    spans.append((match.start, match.end))
        return _replace(text, "phone", spans, counts)


def check_phone_region(region: str) -> str:
    """``region`` as libphonenumber's upper-case region code, or a :class:`ConfigError` naming it."""
    import phonenumbers

    code = str(region).strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        msg = f"phone region {region!r} is not a region code libphonenumber knows (ISO 3166, e.g. US, GB, DE)"
        raise ConfigError(msg)
    return code


def _replace(text: str, kind: str, spans: Iterable[tuple[int, int]], counts: Counter[str]) -> str:
    """``text`` with the (possibly overlapping) ``spans`` replaced by ``[KIND]``, each merged run counted once."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):  # from the end, so earlier offsets stay valid
        text = f"{text[:start]}[{kind.upper()}]{text[end:]}"
    if merged:
        counts[kind] += len(merged)
    return text


def _checked(pattern: re.Pattern[str], text: str, valid: Callable[[str], bool]) -> Iterator[tuple[int, int]]:
    return (m.span() for m in pattern.finditer(text) if valid(m.group()))


def _secret_spans(text: str) -> Iterator[tuple[int, int]]:
    yield from (m.span() for m in _OWN_SECRET.finditer(text))
    for pattern in _vendor_patterns():
        for match in pattern.finditer(text):
            # The whole match: the plugins' groups capture the secret in some patterns and a prefix in others.
            start, end = match.span()
            while start < end and text[start] in _AROUND:
                start += 1
            while end > start and text[end - 1] in _AROUND:
                end -= 1
            if end > start:
                yield start, end
    entropy = _base64_entropy()
    for match in _BARE_TOKEN.finditer(text):
        token = match.group()
        if any(c.isdigit() for c in token) and any(c.isalpha() for c in token) and entropy(token):
            yield match.span()


@functools.cache
def _vendor_patterns() -> tuple[re.Pattern[str], ...]:
    """The denylist regexes of every detect-secrets plugin that has one (read once, on first use)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[re.Pattern[str]] = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in _SKIPPED_PLUGINS:
            patterns += [re.compile(p) if isinstance(p, str) else p for p in plugin().denylist]
    return tuple(patterns)


@functools.cache
def _base64_entropy() -> Callable[[str], bool]:
    """Whether a token's Shannon entropy is over detect-secrets' limit for base64 strings (4.5 bits a character)."""
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    plugin = Base64HighEntropyString()
    return lambda token: plugin.calculate_shannon_entropy(token) > plugin.entropy_limit


def _is_card(candidate: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn.is_valid(digits)


def _is_ssn(candidate: str) -> bool:
    from stdnum.us import ssn

    return bool(ssn.is_valid(candidate.replace(" ", "-")))


def _iban_spans(text: str) -> Iterator[tuple[int, int]]:
    """IBANs: the pattern may run on into the next upper-case word ("DE89 3704 … 00 IS MINE"), so each candidate
    is cut back to the longest prefix that is a valid IBAN (an IBAN written without spaces and run into more
    capitals is missed)."""
    from stdnum import iban

    for match in _IBAN.finditer(text):
        candidate = match.group()
        # Where an IBAN can end: the candidate's end, or before a space (IBANs are printed in groups of four).
        ends = [len(candidate), *(i for i in range(len(candidate) - 1, 14, -1) if candidate[i] == " ")]
        for end in ends:  # longest first; the shortest IBANs (Norway) have 15 characters
            if iban.is_valid(candidate[:end]):
                yield match.start(), match.start() + end
                break
