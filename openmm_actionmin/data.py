"""Locate the data folders shipped with the package (``forcefields/``, ``systems/``).

``setup.py`` installs the repository's top-level ``forcefields/`` and
``systems/`` folders as package data under ``openmm_actionmin/_data/``; in a
source checkout (editable install or plain ``PYTHONPATH``) the top-level folders
are used directly.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent)


def data_path(*parts: str) -> Path:
    """Path of a shipped data file, e.g. ``data_path("systems", "lj_global_minima.csv")``.

    Args:
        *parts: Path components below the data root (first is ``"forcefields"``
            or ``"systems"``).

    Returns:
        The existing path.

    Raises:
        FileNotFoundError: naming the file and where it was looked for.
    """
    for root in _CANDIDATES:
        path = root.joinpath(*parts)
        if path.exists():
            return path
    looked = ", ".join(str(root.joinpath(*parts)) for root in _CANDIDATES)
    raise FileNotFoundError(f"data file {'/'.join(parts)} not found (looked in {looked}); reinstall openmm_actionmin")
