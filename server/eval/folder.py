"""Where an evaluation writes as it goes, so a stopped run resumes with the same memory and adapters."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from .run import EvalResult, RoundRecord


class EvalFolder:
    """Where a run writes as it goes (so a stopped run can be resumed with the same memory and adapters):
    ``state.json`` (what the run replays, anchors before any round), ``turns.jsonl``, ``rounds.jsonl``; at the end
    ``report.json`` and the plots."""

    STATE, TURNS, ROUNDS = "state.json", "turns.jsonl", "rounds.jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._turns: Any = None

    def open(self, stream_setup: dict[str, Any], *, resume: bool) -> EvalResult | None:
        """Start a new run (``None``), or with ``resume`` the earlier run of the same stream (its turns, rounds and
        anchors); a clear error when that does not fit."""
        state_path = self.path / self.STATE
        if resume:
            if not state_path.is_file():
                raise ConfigError(f"--resume: {self.path} holds no earlier run ({self.STATE} is missing)")
            state = json.loads(state_path.read_text())
            if state["stream"] != stream_setup:
                changed = sorted(
                    k for k in {*state["stream"], *stream_setup} if state["stream"].get(k) != stream_setup.get(k)
                )
                raise ConfigError(
                    f"--resume: the earlier run in {self.path} replayed another stream ({', '.join(changed)} differ)"
                )
            turns = []
            for line in (self.path / self.TURNS).read_text().splitlines() if (self.path / self.TURNS).is_file() else []:
                try:
                    turns.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut off when the run stopped: that turn is asked again
                    break
            rounds_file = self.path / self.ROUNDS
            rounds = (
                [RoundRecord(**json.loads(line)) for line in rounds_file.read_text().splitlines()]
                if rounds_file.is_file()
                else []
            )
            (self.path / self.TURNS).write_text("".join(json.dumps(t) + "\n" for t in turns))
            self._turns = (self.path / self.TURNS).open("a")
            return EvalResult(
                turns=turns,
                rounds=rounds,
                anchors_before=state.get("anchors_before"),
                seconds=state.get("seconds", 0.0),
            )
        if (self.path / self.TURNS).exists():
            raise ConfigError(f"{self.path} already holds a run: --resume continues it, or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"stream": stream_setup, "anchors_before": None}, indent=1))
        self._turns = (self.path / self.TURNS).open("w")
        return None

    def add_turn(self, turn: dict[str, Any]) -> None:
        self._turns.write(json.dumps(turn) + "\n")
        self._turns.flush()

    def add_round(self, record: RoundRecord) -> None:
        with (self.path / self.ROUNDS).open("a") as handle:
            handle.write(json.dumps(asdict(record)) + "\n")

    def update_state(self, **fields: Any) -> None:
        state_path = self.path / self.STATE
        state_path.write_text(json.dumps({**json.loads(state_path.read_text()), **fields}, indent=1))

    def close(self) -> None:
        if self._turns is not None:
            self._turns.close()


# -- the report ------------------------------------------------------------------------------------------------
