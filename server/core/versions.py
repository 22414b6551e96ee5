"""Adapter versions (``v1``, ``v2``, …): one parser and one order, for the learning layer (which names them) and
the serving layer (which routes between them and may not import learning)."""

from __future__ import annotations

import re

from .errors import InvalidRequestError

VERSION_PATTERN = re.compile(r"^v([1-9][0-9]{0,5})$")


def is_version(name: str) -> bool:
    """Whether ``name`` is an adapter version (``v3``; not ``v03``, ``3`` or ``student-v3``)."""
    return VERSION_PATTERN.match(name) is not None


def version_number(version: str) -> int:
    """``v12`` -> 12; anything else is a request naming no version."""
    match = VERSION_PATTERN.match(version)
    if match is None:
        raise InvalidRequestError(f"not an adapter version: {version!r} (expected v1, v2, …)")
    return int(match.group(1))


def version_order(version: str) -> tuple[int, str]:
    """A sort key putting versions in the order they were trained (v2 before v10); what is not a version (the
    ``"None"`` of items taught before adapters were versioned) sorts after them all."""
    match = VERSION_PATTERN.match(version)
    return (int(match.group(1)), version) if match else (10**9, version)
