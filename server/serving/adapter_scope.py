"""Which model answers a question: the served adapter, or the base model beside it.

An adapter answers what it learned well and drifts elsewhere; with ``adapter_scope = "taught"`` it answers only
questions near something an adapter learned, and the base model answers the rest (DESIGN.md, "adapter scope").
The router asks this for every student answer, the gate for every question it asks a candidate.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...memory.store import Memory


def adapter_for(
    question: str,
    adapter: str | None,
    memory: Memory | None,
    *,
    scope: str = "taught",
    max_distance: float = 0.35,
    also_learned: Container[str] = (),
    embedding: Sequence[float] | None = None,
    beside: Mapping[str, str] | None = None,
) -> str | None:
    """Which model answers ``question``: the adapter, or the base model (``None``).

    With scope "all" the adapter answers everything. With "taught" it answers only questions near something an
    adapter learned (the nearest remembered question, within ``max_distance``, is marked learned, or is in
    ``also_learned`` — a candidate's new items during its gate); the base model answers the rest, so what it knew
    is not lost to the adapter's drift. vLLM serves both side by side, per request. ``embedding``: the
    question's, when the caller has it already. ``beside``: the earlier adapters served beside ``adapter``
    (``train_recipe`` "stack"), version -> served name: a question nearest an item one of them learned is
    answered by that one.
    """
    if adapter is None or scope == "all":
        return adapter
    if memory is None:
        return None
    nearest = memory.search(question, k=1, embedding=embedding)
    if not nearest or nearest[0].distance > max_distance:
        return None
    record = nearest[0].record
    if record.id in also_learned:
        return adapter
    if not record.learned_by:
        return None
    return (beside or {}).get(record.learned_by, adapter)
