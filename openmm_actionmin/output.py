"""Output paths checked before a search, and results that always reach disk.

:func:`check_output_path` runs before any long work: an unknown extension, a
structure format for a function, a folder that does not exist or cannot be
written, or a path that is a folder, is refused with a one-line error.
:func:`save_result` writes the result; if that still fails, the result goes to
a fallback file in the working directory and the error names both paths.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

#: Extensions a result can be written to.
FORMATS = (".pdb", ".xyz", ".json")


class ResultWriteError(OSError):
    """The result could not be written where asked; ``fallback`` says where it went."""

    def __init__(self, message: str, fallback: Optional[Path]) -> None:
        super().__init__(message)
        self.fallback = fallback


def check_output_path(path: os.PathLike, *, atomic: Optional[bool] = None, option: str = "out") -> Path:
    """Refuse an output path that cannot be written, before the search starts.

    Args:
        path: The requested output file.
        atomic: Whether the target has atoms (``False`` refuses ``.pdb`` and
            ``.xyz``; ``None``: not known yet).
        option: Option name used in messages (``"--out"`` on the CLI).

    Returns:
        The path.

    Raises:
        ValueError: unknown extension, or a structure format for a function.
        OSError: the folder does not exist or is not writable, or the path is a folder.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name such as {path / 'result.json'}")
    if ext not in FORMATS:
        raise ValueError(f"{option} {path}: unknown extension {ext or '(none)'!r}; use one of {', '.join(FORMATS)}")
    if atomic is False and ext != ".json":
        raise ValueError(f"{path}: a function has no atoms to write as {ext}; use .json")
    return check_writable_file(path, option)


def check_writable_file(path: os.PathLike, option: str, example: str = "result.json") -> Path:
    """Refuse a file path that is a folder, lies in a missing or read-only folder, or is read-only.

    Raises:
        OSError: with a one-line message naming ``option`` and the path.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name such as {path / example}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{option} {path}: folder {folder} does not exist; create it first or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: folder {folder} is not writable; choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(
            f"{option} {path}: the file exists and is read-only; choose another path or make it writable"
        )
    return path


def fallback_path(path: os.PathLike, system: str = "", seed: Optional[int] = None) -> Path:
    """A fresh file name in the working directory for a result that could not go to ``path``."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in (system or "result"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = (
        Path.cwd()
        / f"actionmin-{stem}-seed{seed if seed is not None else 0}-{stamp}{Path(path).suffix.lower() or '.json'}"
    )
    candidate, k = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.stem}-{k}{base.suffix}")
        k += 1
    return candidate


def save_result(result, path: os.PathLike) -> Path:
    """Write ``result`` to ``path``; on failure write it to a fallback file and raise.

    Args:
        result: A :class:`~openmm_actionmin.result.Result`.
        path: Output file (.pdb, .xyz or .json).

    Returns:
        The path written.

    Raises:
        ResultWriteError: ``path`` could not be written; the message names
            the fallback file that holds the result instead (or says that
            it could not be written either).
    """
    try:
        return result.save(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fallback = fallback_path(path, result.system, result.seed)
        try:
            if fallback.suffix in (".pdb", ".xyz") and getattr(result.positions, "ndim", 2) != 2:
                fallback = fallback.with_suffix(".json")
            result.save(fallback)
        except (OSError, ValueError) as exc2:
            fallback = fallback.with_suffix(".json")
            try:
                result.save(fallback)
            except (OSError, ValueError):
                raise ResultWriteError(
                    f"could not write {path} ({reason}) nor the fallback {fallback} ({exc2})", None
                ) from None
        raise ResultWriteError(
            f"could not write {path} ({reason}); the result was written to {fallback} instead", fallback
        ) from None
