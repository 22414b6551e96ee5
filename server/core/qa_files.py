"""QA files: JSON Lines of ``question`` + accepted ``answers`` (the reference teacher's knowledge, calibration,
anchor sets, evaluation streams)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .files import read_jsonl


def read_qa_file(path: Path) -> list[dict[str, Any]]:
    """Rows with a non-empty ``question`` and a non-empty list of ``answers``; a clear error otherwise."""
    rows = []
    for number, row in read_jsonl(path, "QA file", ConfigError):
        answers = row.get("answers") if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not answers:
            msg = f"QA file {str(path)!r}, line {number}: needs a 'question' and a list of 'answers'"
            raise ConfigError(msg)
        rows.append({"question": row["question"], "answers": [str(a) for a in answers]})
    if not rows:
        msg = f"QA file {str(path)!r} has no questions"
        raise ConfigError(msg)
    return rows
