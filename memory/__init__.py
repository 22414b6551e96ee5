"""mentee's memory of taught answers: Chroma, mentee's own embeddings, verified hits, and a LangChain retriever.

Public names are imported lazily, so ``import mentee.memory`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from .embedder import Embedder, SentenceTransformerEmbedder
    from .records import MemoryRecord
    from .retriever import MemoryRetriever
    from .store import Hit, Memory, MemoryStoreError, RecordNotFoundError
    from .verify import LearnedVerifier, RuleVerifier, Verdict, Verifier, verify

_EXPORTS = {
    "Embedder": "mentee.memory.embedder",
    "Hit": "mentee.memory.store",
    "Memory": "mentee.memory.store",
    "MemoryRecord": "mentee.memory.records",
    "MemoryRetriever": "mentee.memory.retriever",
    "MemoryStoreError": "mentee.memory.store",
    "RecordNotFoundError": "mentee.memory.store",
    "SentenceTransformerEmbedder": "mentee.memory.embedder",
    "LearnedVerifier": "mentee.memory.verify",
    "RuleVerifier": "mentee.memory.verify",
    "Verdict": "mentee.memory.verify",
    "Verifier": "mentee.memory.verify",
    "verify": "mentee.memory.verify",
}

__all__ = [
    "Embedder",
    "Hit",
    "LearnedVerifier",
    "Memory",
    "MemoryRecord",
    "MemoryRetriever",
    "MemoryStoreError",
    "RecordNotFoundError",
    "RuleVerifier",
    "SentenceTransformerEmbedder",
    "Verdict",
    "Verifier",
    "verify",
]


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
