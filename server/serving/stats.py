"""The answer counts of a deployment: each worker counts its answers by source (and per minute, for the dashboard),
shares them in the home (``stats/<host>-<pid>-<id>.json``, at most every couple of seconds and on close), and sums
every worker's — live or gone — when asked, so ``/v1/mentee/stats`` on any worker covers the whole deployment
and what was counted outlives a restart."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from ..core.files import write_json

logger = logging.getLogger(__name__)

TIMELINE_MINUTES = 24 * 60
STATS_DIR = "stats"
SHARE_EVERY_S = 2.0
SOURCES = ("memory", "student", "teacher")


class AnswerCounts:
    """This worker's answers by source, low-confidence and failed ones, shared with the other workers' in
    ``home/stats``."""

    def __init__(self, home: Path) -> None:
        self._lock = threading.Lock()
        self._answers = dict.fromkeys(SOURCES, 0)
        # Answers by source per minute over the last day, for the dashboard's "teacher share over time".
        self._timeline: deque[dict[str, int]] = deque(maxlen=TIMELINE_MINUTES)
        self._low_confidence = 0
        self._failed = 0
        worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # one process may hold several
        self.folder = home / STATS_DIR
        self._path = self.folder / f"{worker}.json"
        self._shared = 0.0
        self._share_lock = threading.Lock()

    def answered(self, source: str, *, low_confidence: bool) -> None:
        with self._lock:
            self._answers[source] += 1
            minute = int(time.time() // 60) * 60
            if not self._timeline or self._timeline[-1]["minute"] != minute:
                self._timeline.append({"minute": minute, **dict.fromkeys(SOURCES, 0)})
            self._timeline[-1][source] += 1
            self._low_confidence += low_confidence
        self.share()

    def failed(self) -> None:
        with self._lock:
            self._failed += 1
        self.share()

    def mine(self) -> dict[str, Any]:
        """This worker's counts."""
        with self._lock:
            return {
                "answers": dict(self._answers),
                "timeline": [dict(bucket) for bucket in self._timeline],
                "low_confidence": self._low_confidence,
                "failed": self._failed,
                "updated_at": time.time(),
            }

    def share(self, *, force: bool = False) -> None:
        """Write this worker's counts to the home, at most every couple of seconds (and on close)."""
        now = time.monotonic()
        if not force and now - self._shared < SHARE_EVERY_S:
            return
        if not self._share_lock.acquire(blocking=force):
            return  # another thread is writing them right now
        try:
            self._shared = now
            write_json(self._path, self.mine(), indent=None)
        except OSError as e:
            logger.warning("could not share this worker's counts in %s: %s", self._path, e)
        finally:
            self._share_lock.release()

    def deployment(self) -> tuple[dict[str, Any], int]:
        """This worker's counts plus those every other worker (live or gone) shared in the home; how many."""
        merged = self.mine()
        by_minute = {bucket["minute"]: bucket for bucket in merged["timeline"]}
        workers = 1
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            if path == self._path:
                continue
            try:
                other = json.loads(path.read_text())
                for source, count in other["answers"].items():
                    merged["answers"][source] = merged["answers"].get(source, 0) + int(count)
                merged["low_confidence"] += int(other.get("low_confidence", 0))
                merged["failed"] += int(other.get("failed", 0))
                for bucket in other.get("timeline", []):
                    mine = by_minute.setdefault(bucket["minute"], {"minute": bucket["minute"]})
                    for source in SOURCES:
                        mine[source] = mine.get(source, 0) + int(bucket.get(source, 0))
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("skipping the unreadable worker counts %s: %s", path, e)
                continue
            workers += 1
        since = time.time() - TIMELINE_MINUTES * 60
        merged["timeline"] = [by_minute[m] for m in sorted(by_minute) if m >= since]
        return merged, workers
