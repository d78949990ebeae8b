"""Atomic file writing and strict JSON for exports and checkpoints.

Every writer here goes through a temporary file in the destination's
directory and an ``os.replace``, so a reader never sees a half-written file
and an interrupted write leaves the previous file (and no temporary file)
behind. The new file gets the permissions ``open()`` would give it,
``0o666 & ~umask`` (the temporary file is created with ``os.open(...,
0o666)``, so the kernel applies the umask).

JSON is strict (RFC 8259): :func:`to_jsonable` turns NaN and infinities into
``null`` and numpy / torch scalars and arrays into Python numbers and lists,
and :func:`write_json` refuses anything else that is not JSON
(``allow_nan=False``).

This module is a leaf: it imports only the standard library (torch only
inside :func:`atomic_torch_save`, and numpy / torch values are recognised
without importing either).
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable, Tuple

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "dumps_json", "to_jsonable", "write_json"]


def _create_temporary(path: Path) -> Tuple[int, str]:
    """Create a new empty file next to ``path``, mode ``0o666`` less the umask; return (fd, name)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


def _atomic_write(path: os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Run ``write`` on a temporary binary file next to ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating the parent directory.

    Args:
        path: Destination file.
        data: Bytes to write.

    Returns:
        The path written.
    """
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating the parent directory.

    Args:
        path: Destination file.
        text: Text to write.

    Returns:
        The path written.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (for checkpoints).

    Args:
        obj: Anything ``torch.save`` accepts.
        path: Destination file.

    Returns:
        The path written.
    """
    import torch

    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def _is_array_like(value: Any) -> bool:
    """numpy arrays and scalars, torch tensors: anything with ``dtype`` and ``tolist``."""
    return hasattr(value, "dtype") and hasattr(value, "tolist")


def to_jsonable(value: Any) -> Any:
    """``value`` as strict-JSON-ready Python data.

    Dicts (keys become strings), lists and tuples are converted recursively;
    numpy / torch scalars and arrays become Python numbers and (nested)
    lists; non-finite floats (NaN, +-inf) become ``None``. Anything else is
    returned unchanged (``json`` rejects what it cannot encode).

    Args:
        value: Data to convert.

    Returns:
        The converted data.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if _is_array_like(value):
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu()
        return to_jsonable(value.tolist())
    return value


def dumps_json(obj: Any, *, indent: int = 1) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`); raises ``ValueError`` on what cannot be encoded."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: os.PathLike, obj: Any, *, indent: int = 1) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically.

    Args:
        path: Destination file.
        obj: Data (see :func:`to_jsonable` for what is converted).
        indent: JSON indentation.

    Returns:
        The path written.

    Raises:
        TypeError: ``obj`` holds something JSON cannot encode.
    """
    return atomic_write_text(path, dumps_json(obj, indent=indent) + "\n")
