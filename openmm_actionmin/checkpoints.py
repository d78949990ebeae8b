"""Checkpoint files that belong to one run: identity header, lock, atomic writes.

Every search that can resume keeps its state through this module, so the
rules hold once for all of them:

* A checkpoint starts with a header naming the run it belongs to (:class:`RunIdentity`:
  method, seed, target name, atom count or dimension, and a digest of the
  oracle's parameters, the search space and the start). Loading a file whose
  header differs raises :class:`CheckpointMismatch`, naming both runs.
* Files are written atomically (temporary file, then rename) with the
  process umask. A write that fails (disk full, permissions) is a warning,
  not the end of the run.
* :class:`CheckpointLock` stops two processes sharing one file: a second run
  given the same path is refused while the first is alive. The lock names
  the host and process; on a shared filesystem a lock of another host counts
  as alive while its holder keeps saving checkpoints (every save refreshes
  it), and as stale once it is older than :data:`LOCK_STALE_S`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from .fileio import atomic_torch_save

#: Seconds after its last refresh that a lock of another host is taken over.
LOCK_STALE_S = 900.0

#: Version of the checkpoint layout; files of another version are refused.
CHECKPOINT_FORMAT = 2


class CheckpointMismatch(ValueError):
    """A checkpoint file belongs to another run."""


class CheckpointInUse(RuntimeError):
    """Another live process holds the checkpoint's lock."""


class CheckpointWriteWarning(UserWarning):
    """Writing a checkpoint failed; the run continues without it."""


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What makes a checkpoint belong to a run.

    Attributes:
        method: Registered method name.
        seed: Seed of the run.
        target: Target name (``"LJ38"``, ``"alpine1:50"``, the PDB's name).
        size: Atom count (atomic targets) or dimension (functions).
        digest: Hash of the oracle parameters, the search space and the start.
    """

    method: str
    seed: int
    target: str
    size: int
    digest: str

    def describe(self) -> str:
        """One-line description used in error messages."""
        return (
            f"method {self.method}, seed {self.seed}, target {self.target} "
            f"(size {self.size}, digest {self.digest[:12]})"
        )


def _feed(h: "hashlib._Hash", value: Any, depth: int = 0) -> None:
    """Feed a value into a hash: numbers, strings, arrays and tensors; other objects by type name."""
    import numpy as np

    if depth > 3:
        return
    if value is None or isinstance(value, (bool, int, float, str)):
        h.update(repr(value).encode())
    elif isinstance(value, (tuple, list)) and len(value) < 10000:
        for v in value:
            _feed(h, v, depth + 1)
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _feed(h, value[k], depth + 1)
    elif hasattr(value, "detach") and hasattr(value, "numel"):
        if value.numel() <= 10_000_000:
            h.update(np.ascontiguousarray(value.detach().cpu().numpy()).tobytes())
    elif isinstance(value, np.ndarray):
        if value.size <= 10_000_000:
            h.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _feed(h, dataclasses.asdict(value), depth + 1)
    else:
        h.update(type(value).__name__.encode())


def target_digest(system: Any) -> str:
    """Hash of a system's oracle parameters, search space and start positions.

    The oracle contributes its type and every plain attribute (numbers,
    strings, arrays and tensors such as a function's shift or pair
    parameters); the space its bounds or centre; the start its coordinates.
    """
    h = hashlib.sha256()
    oracle = system.oracle
    h.update(type(oracle).__name__.encode())
    for key in sorted(vars(oracle)):
        if key.startswith("_") or key == "counters":
            continue
        _feed(h, vars(oracle)[key])
    space = system.space
    h.update(type(space).__name__.encode())
    for key in sorted(vars(space)):
        if not key.startswith("_"):
            _feed(h, vars(space)[key])
    _feed(h, system.start_positions)
    return h.hexdigest()


def run_identity(system: Any, method: str, seed: int) -> RunIdentity:
    """The :class:`RunIdentity` of running ``method`` with ``seed`` on ``system``."""
    oracle = system.oracle
    size = oracle.n_atoms if getattr(oracle, "n_atoms", None) else int(system.space.dim)
    return RunIdentity(
        method=str(method), seed=int(seed), target=str(system.name), size=int(size), digest=target_digest(system)
    )


def save(path: os.PathLike, state: Dict[str, Any], identity: Optional[RunIdentity]) -> bool:
    """Write ``state`` under an identity header, atomically; a failure only warns.

    Args:
        path: Checkpoint file.
        state: The search's state (anything ``torch.save`` can store).
        identity: The run's identity (``None``: no header check on load).

    Returns:
        Whether the file was written.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "identity": None if identity is None else dataclasses.asdict(identity),
        "state": state,
    }
    try:
        atomic_torch_save(payload, path)
        _refresh_lock(path)
        return True
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
        warnings.warn(
            f"could not write checkpoint {path}: {exc}; the run continues without it",
            CheckpointWriteWarning,
            stacklevel=2,
        )
        return False


def load(path: os.PathLike, identity: Optional[RunIdentity]) -> Optional[Dict[str, Any]]:
    """The state stored in ``path`` if it belongs to this run, ``None`` if there is no file.

    Raises:
        CheckpointMismatch: the file is of another run, another format, or unreadable.
    """
    import torch

    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointMismatch(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); delete it or choose another checkpoint path"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(
            f"checkpoint {path} is not a checkpoint of this version of openmm_actionmin; delete it or choose another "
            "checkpoint path"
        )
    stored = payload.get("identity")
    if identity is not None and stored is not None:
        theirs = RunIdentity(**stored)
        if theirs != identity:
            raise CheckpointMismatch(
                f"checkpoint {path} belongs to another run ({theirs.describe()}); this run is {identity.describe()}. "
                "Delete the file or choose another checkpoint path"
            )
    return payload["state"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refresh_lock(checkpoint: os.PathLike) -> None:
    """Touch ``<checkpoint>.lock`` (if any): its holder is alive."""
    try:
        os.utime(f"{os.fspath(checkpoint)}.lock")
    except OSError:
        pass


class CheckpointLock:
    """An exclusive lock ``<checkpoint>.lock`` held for the length of a run.

    The lock file holds the owner's process id and host name. A lock of a
    process on this host that no longer exists is taken over; a lock of
    another host (a shared filesystem: cluster nodes, Dask workers) is taken
    over once it has not been refreshed for ``stale_after_s`` seconds
    (:func:`save` refreshes it at every checkpoint).

    Args:
        path: The checkpoint file.
        stale_after_s: Age of another host's lock that counts as stale.

    Raises:
        CheckpointInUse: on entry, when a live process holds the lock.
    """

    def __init__(self, path: os.PathLike, stale_after_s: float = LOCK_STALE_S) -> None:
        self.path = Path(f"{os.fspath(path)}.lock")
        self.stale_after_s = float(stale_after_s)
        self.held = False

    def _holder_alive(self) -> Optional[str]:
        """A description of the live holder of an existing lock file, or None if it is stale."""
        try:
            text = self.path.read_text().split()
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        try:
            pid = int(text[0]) if text else 0
        except ValueError:
            return None
        host = text[1] if len(text) > 1 else socket.gethostname()
        if host == socket.gethostname():
            return f"process {pid}" if pid and pid != os.getpid() and _pid_alive(pid) else None
        if age < self.stale_after_s:
            return (
                f"process {pid} on host {host} (refreshed {age:.0f} s ago; taken over after {self.stale_after_s:.0f} s)"
            )
        return None

    def acquire(self) -> None:
        """Take the lock (see the class docstring)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self._holder_alive()
                if holder is not None:
                    raise CheckpointInUse(
                        f"checkpoint {self.path.with_suffix('')} is in use by {holder} (lock {self.path}); "
                        "give this run another checkpoint path, or wait for that run to end"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale lock of a dead process
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()} {socket.gethostname()}")
            self.held = True
            return
        raise CheckpointInUse(f"could not take the lock {self.path}; delete it if no run uses it")

    def release(self) -> None:
        """Give the lock back."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "CheckpointLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
