"""mentee's memory of taught answers: Chroma, mentee's own embeddings, and verified hits.

Public names are imported lazily, so ``import mentee.memory`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mentee.server.lazy import lazy_attributes

if TYPE_CHECKING:
    from mentee.memory.embedder import Embedder, SentenceTransformerEmbedder
    from mentee.memory.records import MemoryRecord
    from mentee.memory.store import Hit, Memory, MemoryStoreError, RecordNotFoundError
    from mentee.memory.verify import Verdict, verify

_EXPORTS = {
    "Embedder": "mentee.memory.embedder",
    "Hit": "mentee.memory.store",
    "Memory": "mentee.memory.store",
    "MemoryRecord": "mentee.memory.records",
    "MemoryStoreError": "mentee.memory.store",
    "RecordNotFoundError": "mentee.memory.store",
    "SentenceTransformerEmbedder": "mentee.memory.embedder",
    "Verdict": "mentee.memory.verify",
    "verify": "mentee.memory.verify",
}

__all__ = [
    "Embedder",
    "Hit",
    "Memory",
    "MemoryRecord",
    "MemoryStoreError",
    "RecordNotFoundError",
    "SentenceTransformerEmbedder",
    "Verdict",
    "verify",
]


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
