"""What the memory keeps: one record per taught answer, stored as a Chroma document (the question) with
metadata (everything else)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ..server.core.errors import InvalidRequestError

Trust = Literal["teacher", "human"]
TRUST_LEVELS: dict[str, int] = {"teacher": 0, "human": 1}  # a person's correction outranks a teacher's answer
MAX_ANSWER_CHARS = 20000
MAX_SOURCE_CHARS = 200
_NAMESPACE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class MemoryRecord:
    """One remembered question and answer, with where it came from and what became of it."""

    id: str
    question: str
    answer: str
    source: str  # which teacher/model gave it ("openai:gpt-4o", …), or who corrected it ("person:alice")
    trust: Trust
    namespace: str
    created_at: float
    updated_at: float
    served: int = 0  # times it answered a question
    learned_by: str = ""  # the adapter version that learned it; empty until one did
    expires_at: float | None = None  # never served after this time (epoch seconds); None: never expires
    invalidated: bool = False  # kept for the record, never served or trained on
    # A different answer a teacher gave later to the same question, kept beside this one for a person to settle
    # (a teacher answer never silently replaces another); empty: no dispute. Settled by a correction.
    disputed_by: str = ""

    def live(self, now: float) -> bool:
        """Whether the record may be served or trained on at ``now``."""
        return not self.invalidated and (self.expires_at is None or self.expires_at > now)

    def to_metadata(self) -> dict[str, str | int | float | bool]:
        # Chroma metadata holds no None: 0.0 stands for "never expires".
        return {
            "answer": self.answer,
            "source": self.source,
            "trust": self.trust,
            "namespace": self.namespace,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "served": self.served,
            "learned_by": self.learned_by,
            "expires_at": self.expires_at or 0.0,
            "invalidated": self.invalidated,
            "disputed_by": self.disputed_by,
        }

    @classmethod
    def from_chroma(cls, record_id: str, question: str, metadata: dict[str, Any]) -> MemoryRecord:
        expires = float(metadata.get("expires_at") or 0.0)
        return cls(
            id=record_id,
            question=question,
            answer=str(metadata["answer"]),
            source=str(metadata.get("source", "")),
            trust=metadata.get("trust", "teacher"),
            namespace=str(metadata.get("namespace", "default")),
            created_at=float(metadata.get("created_at", 0.0)),
            updated_at=float(metadata.get("updated_at", 0.0)),
            served=int(metadata.get("served", 0)),
            learned_by=str(metadata.get("learned_by", "")),
            expires_at=expires or None,
            invalidated=bool(metadata.get("invalidated", False)),
            disputed_by=str(metadata.get("disputed_by", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def evolve(self, **changes: Any) -> MemoryRecord:
        return replace(self, **changes)


def record_id(namespace: str, question: str) -> str:
    """A stable id: the same question in the same namespace is always the same record, in any process."""
    normalised = " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())
    return hashlib.sha256(f"{namespace}\x00{normalised}".encode()).hexdigest()[:32]


def check_text(name: str, value: object, limit: int) -> str:
    """``value`` as clean text, or a clear :class:`InvalidRequestError` naming ``name``."""
    if not isinstance(value, str):
        msg = f"{name} must be text, got {type(value).__name__}"
        raise InvalidRequestError(msg)
    if "\x00" in value:
        msg = f"{name} contains a NUL character"
        raise InvalidRequestError(msg)
    text = value.strip()
    if not text:
        msg = f"{name} is empty"
        raise InvalidRequestError(msg)
    if len(text) > limit:
        msg = f"{name} is {len(text)} characters long; the limit is {limit}"
        raise InvalidRequestError(msg)
    return text


def check_trust(value: object) -> Trust:
    if value not in TRUST_LEVELS:
        msg = f"trust must be one of {sorted(TRUST_LEVELS)}, got {value!r}"
        raise InvalidRequestError(msg)
    return value  # type: ignore[return-value]


def check_namespace(value: object) -> str:
    if not isinstance(value, str) or not _NAMESPACE.match(value):
        msg = f"namespace must be 1-64 characters of letters, digits, '.', '_' or '-', got {value!r}"
        raise InvalidRequestError(msg)
    return value
