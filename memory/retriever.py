"""The memory as a LangChain retriever: remembered questions and answers, nearest first, for RAG chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field


class MemoryRetriever(BaseRetriever):
    """Documents ``"Q: …\\nA: …"`` for the ``k`` remembered items nearest a query, with the item's id, question,
    answer, source, trust, adapter that learned it and cosine distance in the metadata.

    .. code-block:: python

        from mentee.memory import Memory, MemoryRetriever
        from mentee.server import load_settings

        retriever = MemoryRetriever(memory=Memory.from_settings(load_settings()), k=3)
        retriever.invoke("who wrote the old man and the sea")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any = Field(description="A mentee.memory.Memory.")
    k: int = Field(default=4, ge=1, le=100, description="How many items to return.")
    namespace: str | None = Field(default=None, description="The memory namespace; None: the memory's own.")
    max_distance: float | None = Field(default=None, ge=0, le=2, description="Drop items farther than this.")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.memory.search(query, namespace=self.namespace, k=self.k)
        documents = []
        for hit in hits:
            if self.max_distance is not None and hit.distance > self.max_distance:
                continue
            record = hit.record
            documents.append(
                Document(
                    page_content=f"Q: {record.question}\nA: {record.answer}",
                    id=record.id,
                    metadata={
                        "id": record.id,
                        "question": record.question,
                        "answer": record.answer,
                        "source": record.source,
                        "trust": record.trust,
                        "learned_by": record.learned_by,
                        "distance": round(hit.distance, 6),
                    },
                )
            )
        return documents
