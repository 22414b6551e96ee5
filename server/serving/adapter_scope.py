"""Which model answers a question: the served adapter, or the base model beside it.

An adapter answers what it learned well and drifts elsewhere; with ``adapter_scope = "taught"`` it answers only
questions near something an adapter learned, and the base model answers the rest (DESIGN.md, "adapter scope").
The router asks this for every student answer, the gate for every question it asks a candidate.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING

from ..core.versions import version_order

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

    With scope "all" the adapter answers everything (but what one beside it learned). With "taught" it answers
    only questions near something an adapter learned (the nearest remembered question, within ``max_distance``, is
    marked learned, or is in ``also_learned`` — a candidate's new items during its gate); the base model answers
    the rest, so what it knew is not lost to the adapter's drift. vLLM serves both side by side, per request.
    ``embedding``: the question's, when the caller has it already. ``beside``: the earlier adapters served beside
    ``adapter`` (``train_recipe`` "stack"), version -> served name: a question nearest an item one of them learned
    is answered by that one (an item taught before the oldest of them, by the oldest).
    """
    elsewhere = adapter if scope == "all" else None  # who answers a question near nothing learned
    if adapter is None or (scope == "all" and not beside) or memory is None:
        return elsewhere
    nearest = memory.search(question, k=1, embedding=embedding)
    if not nearest or nearest[0].distance > max_distance:
        return elsewhere
    record = nearest[0].record
    if record.id in also_learned:
        return adapter
    holder = _holder(record.learned_by, beside) if record.learned_by and beside else None
    if holder is not None:
        return holder  # also with scope "all": the newest adapter never learned it
    return adapter if record.learned_by else elsewhere


def _holder(learned_by: str, beside: Mapping[str, str]) -> str | None:
    """The adapter beside that answers an item ``learned_by`` taught: that version's own, or for a version older than
    all of them (taught before the stack began, or folded into its consolidated bottom) the oldest one, which was
    trained on it."""
    if learned_by in beside:
        return beside[learned_by]
    numbers = {version_order(version): name for version, name in beside.items()}
    learned, bottom = version_order(learned_by), min(numbers)
    return numbers[bottom] if learned < bottom else None
