"""The memory: taught answers in Chroma, served again only on *verified* hits.

``Memory`` keeps records (:mod:`mentee.memory.records`) in one Chroma collection per embedder (so vectors of
two models never mix; a new embedder re-embeds the old collection once), either in an embedded
``PersistentClient`` under mentee's home or on a Chroma server shared by several processes. mentee computes
the embeddings itself. A hit must be near (cosine distance) *and* pass the memory's verifier
(:mod:`mentee.memory.verify`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlparse

from ..server.core.answers import is_correct
from ..server.core.config import QUESTION_MAX_CHARS
from ..server.core.errors import InvalidRequestError, MenteeError
from .embedder import Embedder, SentenceTransformerEmbedder
from .records import (
    MAX_ANSWER_CHARS,
    MAX_SOURCE_CHARS,
    TRUST_LEVELS,
    MemoryRecord,
    Trust,
    check_namespace,
    check_text,
    check_trust,
    record_id,
)
from .verify import Verdict, Verifier, make_verifier, packaged_verifier

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from ..server.core.config import Settings

logger = logging.getLogger(__name__)

_PAGE = 500
_FLUSH_SERVED_EVERY = 64
# Embedded Chroma 1.5.9 under concurrent requests, once in a 2-minute run of 16 clients (tests/test_load.py):
# "Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk" from a query
# while the collection's vector segment was being written; the other 1,494 requests of the run, before and after,
# were answered. So it is retried briefly, and is still a MemoryStoreError (503) if it persists.
_TRANSIENT = "hnsw segment reader"
_TRANSIENT_RETRY_PAUSES_S = (0.05, 0.2, 0.5)


class MemoryStoreError(MenteeError):
    """The memory's store failed (Chroma unreachable or refused a write)."""


class RecordNotFoundError(MenteeError, KeyError):
    """No record has that id."""


@dataclass(frozen=True)
class Hit:
    """A remembered record near a question: its cosine distance, and whether it verifiably asks the same."""

    record: MemoryRecord
    distance: float
    query: str = field(repr=False)
    verifier: Verifier = field(repr=False, compare=False, default_factory=packaged_verifier)

    @cached_property
    def verdict(self) -> Verdict:
        """Whether the record asks what the query asks, worked out only when asked for: recall and the duplicate
        check look at near hits only (distance first), so a far candidate costs no verification."""
        return self.verifier.check(self.query, self.record.question, self.distance)


class Memory:
    """Remember, recall (verified), list, search, update, delete, expire, invalidate, export, stats."""

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        url: str = "",
        embedder: Embedder | None = None,
        collection: str = "mentee-memory",
        namespace: str = "default",
        max_distance: float = 0.20,
        duplicate_distance: float = 0.05,
        candidates: int = 5,
        max_question_chars: int = QUESTION_MAX_CHARS,
        verifier: Verifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``verifier``: what decides that a near record asks the same question (default: the packaged
        :class:`~mentee.memory.verify.LearnedVerifier`)."""
        if (path is None) == (not url):
            msg = "give the memory either a folder (embedded Chroma) or a Chroma server URL, not both or neither"
            raise InvalidRequestError(msg)
        self.embedder = embedder or SentenceTransformerEmbedder()
        self.namespace = check_namespace(namespace)
        self.max_distance = max_distance
        self.duplicate_distance = duplicate_distance
        self.candidates = candidates
        self.max_question_chars = max_question_chars
        self.verifier = verifier or packaged_verifier()
        self.clock = clock
        self.location = str(path) if path is not None else url
        self._client = _connect(path, url)
        self._write_lock = threading.RLock()
        self._served_pending: dict[tuple[str, str], int] = {}
        self.base = collection
        self._collections: dict[str, Collection] = {}
        self._migrate_from_other_embedders()
        self.collection_name = self._collection(self.namespace).name

    @classmethod
    def from_settings(cls, settings: Settings, *, embedder: Embedder | None = None) -> Memory:
        """The memory the settings describe (Chroma server if ``chroma_url``, else under the home folder)."""
        return cls(
            path=None if settings.chroma_url else settings.home / "memory",
            url=settings.chroma_url,
            embedder=embedder or SentenceTransformerEmbedder.from_settings(settings),
            collection=settings.memory_collection,
            namespace=settings.memory_namespace,
            max_distance=settings.memory_max_distance,
            duplicate_distance=settings.memory_duplicate_distance,
            candidates=settings.memory_candidates,
            max_question_chars=settings.question_max_chars,
            verifier=make_verifier(settings.memory_verifier, settings.memory_verifier_file),
        )

    def in_namespace(self, namespace: str) -> Memory:
        """This memory with another namespace as its own (the same store, embedder, locks and pending counts): for
        a part that must keep to its items only, e.g. the guided run's."""
        import copy

        view = copy.copy(self)
        view.namespace = check_namespace(namespace)
        view.collection_name = view._collection(view.namespace).name
        return view

    # -- writing ---------------------------------------------------------------------------------------------

    def remember(
        self,
        question: str,
        answer: str,
        *,
        source: str,
        trust: Trust = "teacher",
        namespace: str | None = None,
        expires_at: float | None = None,
        embedding: Sequence[float] | None = None,
    ) -> MemoryRecord:
        """Keep an answer. A near-identical question already remembered is updated instead of duplicated; a
        teacher's answer never overwrites a person's, nor another teacher's *different* answer (one that is not
        the same answer in other words, :func:`~mentee.server.core.answers.is_correct` both ways): the stored
        answer stays and the new one is kept beside it as ``disputed_by`` for a person to settle. So the returned
        record's answer is not ``answer`` when it was not taken. Durable when this returns. ``embedding``: the
        question's, from :meth:`embed`, when the caller has it already."""
        question = check_text("question", question, self.max_question_chars)
        answer = check_text("answer", answer, MAX_ANSWER_CHARS)
        source = check_text("source", source, MAX_SOURCE_CHARS)
        trust = check_trust(trust)
        namespace = check_namespace(namespace or self.namespace)
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            msg = f"expires_at {expires_at} is not in the future"
            raise InvalidRequestError(msg)
        vector = list(embedding) if embedding is not None else self.embedder.embed_one(question)
        with self._write_lock:
            existing = self._duplicate_of(question, vector, namespace)
            if existing is not None:
                if TRUST_LEVELS[trust] < TRUST_LEVELS[existing.trust] and existing.live(now):
                    logger.info("kept the person's answer to %r over %s's", existing.question, source)
                    return existing
                changed = existing.answer != answer
                if trust == "teacher" == existing.trust and existing.live(now) and _different(answer, existing.answer):
                    logger.warning(
                        "kept the remembered answer to %r; %s answered it differently, kept as disputed_by",
                        existing.question,
                        source,
                    )
                    disputed = existing.evolve(disputed_by=answer, updated_at=now)
                    self._write(disputed, question=existing.question)
                    return disputed
                if existing.invalidated and not changed:
                    logger.info("%r was invalidated with this very answer; keeping it invalidated", existing.question)
                    return existing
                record = existing.evolve(
                    answer=answer,
                    source=source,
                    trust=trust,
                    updated_at=now,
                    expires_at=expires_at,
                    invalidated=False,
                    learned_by="" if changed else existing.learned_by,  # a new answer must be learned again
                    disputed_by="",
                )
                self._write(record, question=existing.question)
                return record
            record = MemoryRecord(
                id=record_id(namespace, question),
                question=question,
                answer=answer,
                source=source,
                trust=trust,
                namespace=namespace,
                created_at=now,
                updated_at=now,
                expires_at=expires_at,
            )
            self._write(record, embedding=vector)
            return record

    def remember_many(
        self,
        items: Sequence[tuple[str, str]],
        *,
        source: str,
        trust: Trust = "teacher",
        namespace: str | None = None,
    ) -> int:
        """Bulk import of (question, answer) pairs, e.g. seeding a memory from a QA file: embedded in batches,
        the same question (same id) kept once, no near-duplicate merging. The number stored."""
        source = check_text("source", source, MAX_SOURCE_CHARS)
        trust = check_trust(trust)
        namespace = check_namespace(namespace or self.namespace)
        now = self.clock()
        records: dict[str, MemoryRecord] = {}
        for question, answer in items:
            q = check_text("question", question, self.max_question_chars)
            rid = record_id(namespace, q)
            records[rid] = MemoryRecord(
                id=rid,
                question=q,
                answer=check_text("answer", answer, MAX_ANSWER_CHARS),
                source=source,
                trust=trust,
                namespace=namespace,
                created_at=now,
                updated_at=now,
            )
        batch = list(records.values())
        with self._write_lock:
            for start in range(0, len(batch), _PAGE):
                page = batch[start : start + _PAGE]
                self._call(
                    self._collection(namespace).upsert,
                    ids=[r.id for r in page],
                    embeddings=self.embedder.embed([r.question for r in page]),
                    documents=[r.question for r in page],
                    metadatas=[r.to_metadata() for r in page],
                )
        return len(batch)

    def update(
        self,
        record_id_: str,
        *,
        answer: str | None = None,
        source: str | None = None,
        trust: Trust | None = None,
        expires_at: float | None = None,
        namespace: str | None = None,
    ) -> MemoryRecord:
        """Change a record's answer, source, trust or expiry (0 removes it). A changed answer must be learned
        again."""
        with self._write_lock:
            record = self._require(record_id_, namespace)
            changes: dict[str, Any] = {"updated_at": self.clock()}
            if answer is not None:
                changes["answer"] = check_text("answer", answer, MAX_ANSWER_CHARS)
                if changes["answer"] != record.answer:
                    changes["learned_by"] = ""
                changes["disputed_by"] = ""  # a person's answer settles a dispute
            if source is not None:
                changes["source"] = check_text("source", source, MAX_SOURCE_CHARS)
            if trust is not None:
                changes["trust"] = check_trust(trust)
            if expires_at is not None:
                changes["expires_at"] = expires_at if expires_at > 0 else None
            updated = record.evolve(**changes)
            self._write(updated, question=record.question)
            return updated

    def invalidate(self, record_id_: str, *, namespace: str | None = None) -> MemoryRecord:
        """Keep the record for inspection, but never serve it or train on it again."""
        with self._write_lock:
            record = self._require(record_id_, namespace).evolve(invalidated=True, updated_at=self.clock())
            self._write(record, question=record.question)
            return record

    def delete(self, record_id_: str, *, namespace: str | None = None) -> bool:
        """Remove a record; ``False`` if there was none."""
        with self._write_lock:
            if self._stored(record_id_, namespace) is None:
                return False
            self._served_pending.pop((check_namespace(namespace or self.namespace), record_id_), None)
            self._call(self._collection(namespace).delete, ids=[record_id_])
            return True

    def clear(self, *, namespace: str | None = None) -> int:
        """Delete every record of the namespace; the number deleted."""
        with self._write_lock:
            ids = [r.id for r in self._iter(namespace=namespace)]
            for start in range(0, len(ids), _PAGE):
                self._call(self._collection(namespace).delete, ids=ids[start : start + _PAGE])
            pending = check_namespace(namespace or self.namespace)
            for key in [k for k in self._served_pending if k[0] == pending]:
                self._served_pending.pop(key, None)
            return len(ids)

    def expire(self, *, namespace: str | None = None) -> int:
        """Delete every record whose expiry has passed; the number deleted."""
        now = self.clock()
        passed = {"$and": [{"expires_at": {"$gt": 0.0}}, {"expires_at": {"$lte": now}}]}
        with self._write_lock:
            expired = [r.id for r in self._iter(namespace=namespace, where=passed)]
            for start in range(0, len(expired), _PAGE):
                self._call(self._collection(namespace).delete, ids=expired[start : start + _PAGE])
            return len(expired)

    def mark_learned(self, ids: Sequence[str], adapter: str, *, namespace: str | None = None) -> int:
        """Record that adapter ``adapter`` learned these records; the number marked."""
        adapter = check_text("adapter", adapter, MAX_SOURCE_CHARS)
        marked = 0
        with self._write_lock:
            for rid in ids:
                record = self._stored(rid, namespace)
                if record is not None:
                    self._write(record.evolve(learned_by=adapter), question=record.question)
                    marked += 1
        return marked

    # -- reading ---------------------------------------------------------------------------------------------

    def recall(
        self, question: str, *, namespace: str | None = None, embedding: Sequence[float] | None = None
    ) -> Hit | None:
        """The best *verified* live hit for ``question``, or ``None``. A person's answer beats a teacher's."""
        question = check_text("question", question, self.max_question_chars)
        hits = [
            hit
            for hit in self._nearest(question, namespace, embedding, self.candidates, live_only=True)
            if hit.distance <= self.max_distance and hit.verdict.same
        ]
        if not hits:
            return None
        best = min(hits, key=lambda h: (-TRUST_LEVELS[h.record.trust], h.distance))
        self._count_served(best.record)
        return best

    def search(
        self, text: str, *, namespace: str | None = None, k: int = 10, embedding: Sequence[float] | None = None
    ) -> list[Hit]:
        """The ``k`` nearest live records, verified or not (for people looking through the memory, the router's
        adapter scope and the teacher's context)."""
        text = check_text("search text", text, self.max_question_chars)
        return self._nearest(text, namespace, embedding, k, live_only=True)

    def embed(self, question: str) -> list[float]:
        """The question's embedding, checked as :meth:`recall` checks it: one turn embeds its question once and
        passes it to :meth:`recall`, :meth:`search` and :meth:`remember` (the embedding is most of a hit's cost)."""
        return self.embedder.embed_one(check_text("question", question, self.max_question_chars))

    def get(self, record_id_: str, *, namespace: str | None = None) -> MemoryRecord | None:
        """The record with this id, or ``None``."""
        record = self._stored(record_id_, namespace)
        if record is None:
            return None
        return record.evolve(served=record.served + self._served_pending.get((record.namespace, record.id), 0))

    def list(
        self,
        *,
        namespace: str | None = None,
        source: str | None = None,
        trust: Trust | None = None,
        learned: bool | None = None,
        disputed: bool | None = None,
        include_dead: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MemoryRecord]:
        """Records, newest first, filtered by source, trust, learned or not, disputed or not; expired/invalidated
        ones on request."""
        if limit < 1 or offset < 0:
            msg = f"limit must be >= 1 and offset >= 0, got limit={limit}, offset={offset}"
            raise InvalidRequestError(msg)
        now = self.clock()
        records = [
            r
            for r in self._iter(namespace=namespace)
            if (source is None or r.source == source)
            and (trust is None or r.trust == trust)
            and (learned is None or bool(r.learned_by) == learned)
            and (disputed is None or bool(r.disputed_by) == disputed)
            and (include_dead or r.live(now))
        ]
        records.sort(key=lambda r: r.updated_at, reverse=True)
        return records[offset : offset + limit]

    def training_examples(self, *, namespace: str | None = None, include_learned: bool = False) -> list[dict[str, str]]:
        """Live records as training examples: those no adapter learned yet, or all with ``include_learned``."""
        return [
            {"id": r.id, "question": r.question, "answer": r.answer, "trust": r.trust, "source": r.source}
            for r in self.list(namespace=namespace, learned=None if include_learned else False, limit=10**9)
        ]

    def count(self, *, namespace: str | None = None) -> int:
        """Records in the namespace, expired and invalidated ones included."""
        return int(self._call(self._collection(namespace).count))

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """Counts by trust, source and learned state, times served, and what the memory runs on."""
        now = self.clock()
        records = list(self._iter(namespace=namespace))
        live = [r for r in records if r.live(now)]
        by_source: dict[str, int] = {}
        for r in live:
            by_source[r.source] = by_source.get(r.source, 0) + 1
        return {
            "records": len(records),
            "live": len(live),
            "expired": sum(1 for r in records if not r.invalidated and not r.live(now)),
            "invalidated": sum(1 for r in records if r.invalidated),
            "human": sum(1 for r in live if r.trust == "human"),
            "teacher": sum(1 for r in live if r.trust == "teacher"),
            "learned": sum(1 for r in live if r.learned_by),
            "not_learned": sum(1 for r in live if not r.learned_by),
            "disputed": sum(1 for r in live if r.disputed_by),
            "served": sum(r.served for r in records),
            "by_source": by_source,
            "embedder": self.embedder.id,
            "collection": self.collection_name,
            "store": self.location,
        }

    # -- lifecycle -------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write pending served-counts (kept in memory so a hit costs no write)."""
        with self._write_lock:
            pending, self._served_pending = self._served_pending, {}
            for (namespace, rid), extra in pending.items():
                record = self._stored(rid, namespace)
                if record is not None:
                    self._write(record.evolve(served=record.served + extra), question=record.question)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------------------

    def _nearest(
        self, question: str, namespace: str | None, embedding: Sequence[float] | None, k: int, *, live_only: bool
    ) -> list[Hit]:
        vector = list(embedding) if embedding is not None else self.embedder.embed_one(question)
        now = self.clock()
        collection = self._collection(namespace)
        # No metadata filter on the fast path (a filter costs Chroma a scan); dead records are dropped here,
        # and only if they crowded out live ones is the query repeated with the filter.
        hits = self._query(collection, question, vector, k, where=None)
        if live_only:
            live = [h for h in hits if h.record.live(now)]
            if len(live) < len(hits):
                live = self._query(collection, question, vector, k, where=_live_at(now))
            hits = [h for h in live if h.record.live(now)]
        return hits

    def _query(
        self, collection: Collection, question: str, vector: list[float], k: int, where: dict[str, Any] | None
    ) -> list[Hit]:
        result = self._call(
            collection.query,
            query_embeddings=[vector],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(
                record=MemoryRecord.from_chroma(rid, document, metadata),
                distance=float(distance),
                query=question,
                verifier=self.verifier,
            )
            for rid, document, metadata, distance in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def _duplicate_of(self, question: str, embedding: list[float], namespace: str) -> MemoryRecord | None:
        exact = self._stored(record_id(namespace, question), namespace)
        if exact is not None:
            return exact
        for hit in self._nearest(question, namespace, embedding, 3, live_only=False):
            if hit.distance <= self.duplicate_distance and hit.verdict.same:
                return hit.record
        return None

    def _write(
        self, record: MemoryRecord, *, question: str | None = None, embedding: list[float] | None = None
    ) -> None:
        collection = self._collection(record.namespace)
        if embedding is None:
            self._call(collection.update, ids=[record.id], metadatas=[record.to_metadata()])
            return
        self._call(
            collection.upsert,
            ids=[record.id],
            embeddings=[embedding],
            documents=[question or record.question],
            metadatas=[record.to_metadata()],
        )

    def _count_served(self, record: MemoryRecord) -> None:
        key = (record.namespace, record.id)
        with self._write_lock:
            self._served_pending[key] = self._served_pending.get(key, 0) + 1
            pending = sum(self._served_pending.values())
        if pending >= _FLUSH_SERVED_EVERY:
            self.flush()

    def _stored(self, rid: str, namespace: str | None = None) -> MemoryRecord | None:
        """The record as stored (served-counts not yet flushed left out): what writes start from."""
        result = self._call(self._collection(namespace).get, ids=[rid], include=["documents", "metadatas"])
        if not result["ids"]:
            return None
        return MemoryRecord.from_chroma(result["ids"][0], result["documents"][0], result["metadatas"][0])

    def _require(self, rid: str, namespace: str | None) -> MemoryRecord:
        record = self._stored(rid, namespace)
        if record is None:
            msg = f"no remembered item has id {rid!r}"
            raise RecordNotFoundError(msg)
        return record

    def _iter(self, *, namespace: str | None = None, where: dict[str, Any] | None = None) -> Iterator[MemoryRecord]:
        collection = self._collection(namespace)
        offset = 0
        while True:
            page = self._call(
                collection.get, where=where, limit=_PAGE, offset=offset, include=["documents", "metadatas"]
            )
            for rid, document, metadata in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
                record = MemoryRecord.from_chroma(rid, document, metadata)
                yield record.evolve(served=record.served + self._served_pending.get((record.namespace, rid), 0))
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def _collection(self, namespace: str | None) -> Collection:
        """The namespace's collection for this embedder (one per namespace: no filter needed to keep them apart)."""
        namespace = check_namespace(namespace or self.namespace)
        collection = self._collections.get(namespace)
        if collection is None:
            collection = self._call(
                self._client.get_or_create_collection,
                name=_collection_name(self.base, namespace, self.embedder.id),
                configuration={"hnsw": {"space": "cosine"}},
                metadata={
                    "mentee_memory": self.base,
                    "namespace": namespace,
                    "embedder": self.embedder.id,
                    "dimension": self.embedder.dimension,
                },
                embedding_function=None,
            )
            self._collections[namespace] = collection
        return collection

    def _migrate_from_other_embedders(self) -> None:
        """Re-embed memories written with another embedder into this embedder's collections, then drop the old
        ones: vectors of two models never mix."""
        for other in self._call(self._client.list_collections):
            metadata = other.metadata or {}
            if metadata.get("mentee_memory") != self.base or metadata.get("embedder") == self.embedder.id:
                continue
            old = self._client.get_collection(other.name, embedding_function=None)
            target = self._collection(str(metadata.get("namespace", self.namespace)))
            moved = 0
            offset = 0
            while True:
                page = old.get(limit=_PAGE, offset=offset, include=["documents", "metadatas"])
                if page["ids"]:
                    target.upsert(
                        ids=page["ids"],
                        embeddings=self.embedder.embed(page["documents"]),
                        documents=page["documents"],
                        metadatas=page["metadatas"],
                    )
                    moved += len(page["ids"])
                if len(page["ids"]) < _PAGE:
                    break
                offset += _PAGE
            logger.warning(
                "re-embedded %d records of %s (embedder %s) with %s", moved, other.name, metadata.get("embedder"),
                self.embedder.id,
            )  # fmt: skip
            self._client.delete_collection(other.name)

    def _call(self, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        import tenacity

        # Every call mentee makes is idempotent (query, get, upsert, update, delete by id): asking again is safe.
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(len(_TRANSIENT_RETRY_PAUSES_S) + 1),
            wait=tenacity.wait_chain(*(tenacity.wait_fixed(pause) for pause in _TRANSIENT_RETRY_PAUSES_S)),
            retry=tenacity.retry_if_exception(lambda e: _TRANSIENT in str(e)),
            before_sleep=lambda state: logger.warning(
                "the memory's Chroma store: %s; trying again in %.2f s",
                state.outcome.exception() if state.outcome else None,
                state.next_action.sleep if state.next_action else 0.0,
            ),
            reraise=True,
        )
        try:
            return retrying(method, **kwargs)
        except (InvalidRequestError, RecordNotFoundError):
            raise
        except Exception as e:
            msg = f"the memory's Chroma store ({self.location}) failed: {e}"
            raise MemoryStoreError(msg) from e


def _different(answer: str, stored: str) -> bool:
    """Whether two answers say different things, not the same in other words ("Shakespeare" and "William
    Shakespeare" are the same): neither contains the other, normalised as answers are judged."""
    return not (is_correct(answer, [stored]) or is_correct(stored, [answer]))


def _connect(path: str | Path | None, url: str) -> ClientAPI:
    import chromadb

    settings = chromadb.Settings(anonymized_telemetry=False)
    try:
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=settings)
        parsed = urlparse(url)
        client = chromadb.HttpClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=settings,
        )
        client.heartbeat()
        return client
    except Exception as e:
        msg = f"cannot open the memory's Chroma store at {path or url}: {e}"
        raise MemoryStoreError(msg) from e


def _collection_name(base: str, namespace: str, embedder_id: str) -> str:
    return f"{base}.{namespace}.{hashlib.sha256(embedder_id.encode()).hexdigest()[:10]}"


def _live_at(now: float) -> dict[str, Any]:
    return {"$and": [{"invalidated": False}, {"$or": [{"expires_at": 0.0}, {"expires_at": {"$gt": now}}]}]}
