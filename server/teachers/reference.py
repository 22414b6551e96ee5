"""The reference teacher: answers from a QA file (JSON Lines: ``question`` + ``answers``), the offline default.

A question is matched to the file's questions with mentee's embedder and the memory's verification (so "the
flag of Denmark" is not answered with the flag of Switzerland); with no verified match it says it does not
know, which the guard flags as unusable. The file's embeddings are cached next to mentee's home.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.qa_files import read_qa_file
from ..student.prompting import ChatMessage
from .base import TaughtItem, Teacher, TeacherAnswer

if TYPE_CHECKING:
    import numpy as np

    from ...memory.embedder import Embedder

logger = logging.getLogger(__name__)

DONT_KNOW = "I don't know."
# The reference teacher has no language model: its "paraphrases" are these fixed rewordings around the question's
# own words. A chat teacher (OpenAI-compatible, LangChain) writes real paraphrases.
REWORDINGS = (
    "Do you know {q}",
    "Tell me: {q}",
    "Can you tell me {q}",
    "I would like to know {q}",
    "Quick question: {q}",
    "Please answer this: {q}",
)


class ReferenceTeacher(Teacher):
    """Knows exactly what a QA file knows."""

    def __init__(
        self, qa_file: str | Path, embedder: Embedder, *, cache_dir: Path | None = None, max_distance: float = 0.2
    ) -> None:
        self.path = Path(qa_file).expanduser()
        self.rows = read_qa_file(self.path)
        self.embedder = embedder
        self.max_distance = max_distance
        self.cache_dir = cache_dir
        self.name = f"reference:{self.path.name}"
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def ask(self, messages: Sequence[ChatMessage], *, context: Sequence[TaughtItem] = ()) -> TeacherAnswer:
        from ...memory.verify import verify

        started = time.monotonic()
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = DONT_KNOW
        match = self.lookup(question)
        if match is not None and verify(question, match["question"]).same:
            answer = match["answers"][0]
        return TeacherAnswer(
            text=answer,
            model=self.name,
            tokens_in=len(question.split()),
            tokens_out=len(answer.split()),
            seconds=time.monotonic() - started,
        )

    def paraphrase(self, question: str, count: int) -> TeacherAnswer | None:
        """``count`` fixed rewordings of the question (see :data:`REWORDINGS`)."""
        started = time.monotonic()
        text = question.strip()
        lowered = text[:1].lower() + text[1:]
        lines = [template.format(q=lowered) for template in REWORDINGS[: max(0, count)]]
        return TeacherAnswer(
            text="\n".join(lines),
            model=self.name,
            tokens_in=len(text.split()),
            tokens_out=sum(len(line.split()) for line in lines),
            seconds=time.monotonic() - started,
        )

    def lookup(self, question: str) -> dict[str, Any] | None:
        """The file's row nearest to ``question`` within ``max_distance``, or ``None``."""
        import numpy as np

        vectors = self._load_vectors()
        query = np.asarray(self.embedder.embed_one(question), dtype=np.float32)
        similarities = vectors @ query
        best = int(np.argmax(similarities))
        return self.rows[best] if 1.0 - float(similarities[best]) <= self.max_distance else None

    def _load_vectors(self) -> np.ndarray:
        import numpy as np

        with self._lock:
            if self._vectors is not None:
                return self._vectors
            cache = self._cache_path()
            if cache is not None and cache.is_file():
                self._vectors = np.load(cache)
                return self._vectors
            logger.info("embedding the %d questions of %s once", len(self.rows), self.path)
            vectors = np.asarray(self.embedder.embed([r["question"] for r in self.rows]), dtype=np.float32)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = cache.with_suffix(".tmp.npy")
                np.save(partial, vectors)
                partial.replace(cache)
            self._vectors = vectors
            return vectors

    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(self.path.read_bytes() + self.embedder.id.encode()).hexdigest()[:16]
        return self.cache_dir / f"reference-{digest}.npy"
