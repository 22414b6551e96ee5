"""The adapters store: versioned LoRA folders (``adapters/v1``, ``v2``, …) with manifests, and the active pointer.

A version's folder appears only when its adapter is complete (trained in a temp folder, renamed into place), so
a crash never leaves a half-written version. Its manifest (``mentee-adapter.json``) holds the data ids, the
hyper-parameters, the metrics, the gate's verdict and the base model's checksum. ``active.json`` names the version
being served (or none: the base model); every API worker reads it, so they agree, and a worker that missed a
switch catches up on its next read. Only a version whose gate passed can be made active.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import MenteeError, StudentError
from ..core.files import write_json
from ..core.versions import is_version, version_number

logger = logging.getLogger(__name__)

MANIFEST = "mentee-adapter.json"
ACTIVE = "active.json"


class AdapterError(MenteeError):
    """An adapter version is missing, incomplete, or may not be served."""


class AdapterNotFoundError(AdapterError):
    """No such adapter version."""


@dataclass(frozen=True)
class AdapterVersion:
    """One trained adapter: its folder and manifest."""

    version: str  # "v3"
    path: Path
    manifest: dict[str, Any]

    @property
    def served_name(self) -> str:
        """The name vLLM serves it under: new per version, never reloaded in place under an old name."""
        return served_as(self.version)

    @property
    def verdict(self) -> str:
        """'passed', 'refused', or 'pending' (trained, not yet gated)."""
        gate = self.manifest.get("gate") or {}
        return str(gate.get("verdict", "pending"))

    @property
    def prompt_format(self) -> str | None:
        """The prompt format it was trained in and is asked in ('qa-bare', 'qa', 'chat'; older ones: 'qa')."""
        recorded = self.manifest.get("prompt_format")
        return str(recorded) if recorded else None

    @property
    def serves_with(self) -> tuple[str, ...]:
        """The earlier versions served beside it, each answering the items it learned (``train_recipe`` "stack");
        empty: it answers everything taught itself."""
        return tuple(str(v) for v in self.manifest.get("serves_with") or ())

    @property
    def beside(self) -> dict[str, str]:
        """Its :attr:`serves_with` as the router takes them: version -> served name."""
        return {version: served_as(version) for version in self.serves_with}

    @property
    def number(self) -> int:
        return version_number(self.version)


def served_as(version: str) -> str:
    """The name vLLM serves ``version`` under (``v3`` -> ``student-v3``)."""
    return f"student-{version}"


class AdapterStore:
    """The adapters folder of one deployment (shared by its API workers and its trainer)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    # -- versions --------------------------------------------------------------------------------------------

    def versions(self) -> list[AdapterVersion]:
        """Complete versions, oldest first."""
        found = []
        for folder in self.root.iterdir():
            if folder.is_dir() and is_version(folder.name) and (folder / MANIFEST).is_file():
                found.append(self._read(folder))
        return sorted(found, key=lambda v: v.number)

    def get(self, version: str) -> AdapterVersion:
        folder = self.root / f"v{version_number(version)}"
        if not (folder / MANIFEST).is_file():
            msg = f"no adapter {version!r} in {self.root}"
            raise AdapterNotFoundError(msg)
        return self._read(folder)

    @contextmanager
    def new_version(self) -> Iterator[tuple[str, Path]]:
        """Reserve the next version and give a temp folder to write it into; on success the folder (which must
        hold a manifest by then) is renamed to ``vN``; on failure it is removed and no version appears."""
        with self._lock():
            numbers = [v.number for v in self.versions()]
            numbers += [int(m.group(1)) for p in self.root.glob(".partial-v*") if (m := re.search(r"v(\d+)$", p.name))]
            version = f"v{max(numbers, default=0) + 1}"
            partial = self.root / f".partial-{version}"
            partial.mkdir()
        try:
            yield version, partial
            if not (partial / MANIFEST).is_file():
                msg = f"adapter {version} has no manifest: not complete"
                raise AdapterError(msg)
            partial.rename(self.root / version)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def update_manifest(self, version: str, **changes: Any) -> AdapterVersion:
        """Merge ``changes`` into a version's manifest (written to a temp file, then renamed)."""
        adapter = self.get(version)
        manifest = {**adapter.manifest, **changes}
        write_json(adapter.path / MANIFEST, manifest)
        return AdapterVersion(adapter.version, adapter.path, manifest)

    def remove_partials(self) -> int:
        """Delete what crashed rounds left behind; how many."""
        partials = list(self.root.glob(".partial-v*"))
        for folder in partials:
            shutil.rmtree(folder, ignore_errors=True)
        return len(partials)

    # -- the active version ----------------------------------------------------------------------------------

    def active(self) -> AdapterVersion | None:
        """The version being served, or ``None`` for the base model."""
        state = self._active_state()
        version = state.get("active")
        if not version:
            return None
        try:
            return self.get(version)
        except AdapterError:
            logger.warning("the active adapter %s is gone; serving the base model", version)
            return None

    def servable(self, version: str | None) -> AdapterVersion | None:
        """The version, if it may be served (it exists and passed its gate); ``None`` stands for the base model."""
        if version is None:
            return None
        adapter = self.get(version)
        if adapter.verdict != "passed":
            msg = f"adapter {version} did not pass its gate ({adapter.verdict}); it is never served"
            raise AdapterError(msg)
        return adapter

    def activate(self, version: str | None, *, reason: str = "") -> AdapterVersion | None:
        """Make ``version`` (a passed one) the served version; ``None`` goes back to the base model. Running
        servers follow within a second (:func:`serve`)."""
        with self._lock():
            adapter = self.servable(version)
            state = self._active_state()
            history = [*state.get("history", []), {"active": version, "at": time.time(), "reason": reason}]
            write_json(self.root / ACTIVE, {"active": version, "history": history[-100:]})
        return adapter

    def history(self) -> list[dict[str, Any]]:
        return list(self._active_state().get("history", []))

    # -- internals -------------------------------------------------------------------------------------------

    def _active_state(self) -> dict[str, Any]:
        path = self.root / ACTIVE
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            msg = f"{path} is unreadable: {e}"
            raise AdapterError(msg) from e

    def _read(self, folder: Path) -> AdapterVersion:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            msg = f"the manifest of {folder} is unreadable: {e}"
            raise AdapterError(msg) from e
        return AdapterVersion(folder.name, folder, manifest)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        from filelock import FileLock

        with FileLock(str(self.root / ".lock"), timeout=60):
            yield


class AdapterHost(Protocol):
    """What serves adapters: the student's vLLM (:class:`~mentee.server.student.client.Student`)."""

    def adapters(self) -> list[str]: ...
    def load_adapter(self, name: str, path: str | Path, format_name: str | None = None) -> None: ...
    def unload_adapter(self, name: str) -> None: ...


def serve(
    student: AdapterHost,
    store: AdapterStore,
    adapter: AdapterVersion | None,
    *,
    keep_loaded: int,
    switch: Callable[[AdapterVersion | None], None],
    reason: str | None = None,
) -> None:
    """Put ``adapter`` (``None``: the base model) in service: the one path for a round's pass, the API, the CLI's
    ``mentee adapters activate`` (which every running worker then follows) and a worker catching up.

    It is loaded into vLLM first (so a version that cannot load never becomes active), made the store's active
    version when ``reason`` is given (the caller is switching it, not following a switch), handed to ``switch``
    (the router), and older loaded versions beyond ``keep_loaded`` are unloaded — never one whose gate is still
    running, which another process may be asking right now.
    """
    beside = served_beside(store, adapter)
    for each in (*beside, *([adapter] if adapter is not None else [])):
        # also when another worker loaded it: this one learns the format it is asked in
        student.load_adapter(each.served_name, each.path, each.prompt_format)
    if reason is not None:
        store.activate(adapter.version if adapter is not None else None, reason=reason)
    switch(adapter)
    _unload_old(student, store, keep=[*beside, *([adapter] if adapter is not None else [])], keep_loaded=keep_loaded)


def served_beside(store: AdapterStore, adapter: AdapterVersion | None) -> list[AdapterVersion]:
    """The versions served beside ``adapter`` (its ``serves_with``), each a passed version of the store; an
    :class:`AdapterError` if one is gone or was not passed (its items would be answered by none)."""
    beside = []
    for version in adapter.serves_with if adapter is not None else ():
        served = store.servable(version)
        if served is not None:
            beside.append(served)
    return beside


def load_named(student: AdapterHost, store: AdapterStore, served_name: str) -> None:
    """Make sure the store's version served as ``served_name`` (``student-v3``) is loaded and asked in the prompt
    format it was trained in, for a caller that names an adapter by hand (``mentee ask --adapter``). A name that
    is no version of the store (a LoRA loaded into vLLM by other means) is left as it is."""
    version = _version_served_as(served_name)
    if version is None:
        return
    try:
        adapter = store.get(version)
    except AdapterError:
        return
    student.load_adapter(adapter.served_name, adapter.path, adapter.prompt_format)


def _version_served_as(name: str) -> str | None:
    """The store version vLLM serves as ``name`` (``student-v3`` -> ``v3``; the inverse of ``served_name``), or
    ``None`` for a name that is no version (a LoRA loaded by other means)."""
    version = name.removeprefix("student-")
    return version if is_version(version) else None


def _unload_old(student: AdapterHost, store: AdapterStore, *, keep: list[AdapterVersion], keep_loaded: int) -> None:
    """Unload loaded versions beyond ``keep_loaded``, oldest first; never one in ``keep`` (the active one and those
    served beside it, which count towards ``keep_loaded``) nor one whose gate is running."""
    loaded = sorted(
        (name for name in student.adapters() if _version_served_as(name)),
        key=lambda name: version_number(name.removeprefix("student-")),
    )
    decided = []
    for name in loaded:
        if name in {each.served_name for each in keep}:
            continue
        try:
            if store.get(name.removeprefix("student-")).verdict == "pending":
                continue  # a candidate in its gate
        except AdapterError:
            pass  # gone from the store: nothing will ask for it
        decided.append(name)
    for name in decided[: max(0, len(decided) - max(0, keep_loaded - max(1, len(keep))))]:
        try:
            student.unload_adapter(name)
        except StudentError:
            if name in student.adapters():
                raise
            # workers sharing one vLLM follow the same switch: another unloaded it a moment ago
