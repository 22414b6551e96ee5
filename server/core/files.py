"""Files: JSON written whole or not at all (a temp file beside the target, renamed over it), JSON Lines read with
errors that name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (a reader sees the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(data, indent=indent) + "\n")
    partial.replace(path)
    return path


def read_jsonl(path: Path, what: str, error: type[Exception]) -> list[tuple[int, Any]]:
    """The rows of a JSON Lines file with their line numbers (blank lines skipped); ``error`` naming ``what``
    file and the line when it is missing or a line is not JSON."""
    if not path.is_file():
        msg = f"{what} {str(path)!r} does not exist"
        raise error(msg)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as e:
            msg = f"{what} {str(path)!r}, line {number}: not JSON ({e})"
            raise error(msg) from e
    return rows
