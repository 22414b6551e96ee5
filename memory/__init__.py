"""mentee's memory of taught answers: Chroma, mentee's own embeddings, and verified hits.

Public names are imported lazily, so ``import mentee.memory`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
