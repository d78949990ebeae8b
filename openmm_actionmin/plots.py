"""Plots of search progress (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence


def plot_history(
    history: Sequence[Dict[str, Any]],
    path: os.PathLike,
    *,
    keys: Optional[List[str]] = None,
    x_key: str = "wall_s",
    title: str = "",
    log_keys: Sequence[str] = (),
) -> Path:
    """Plot history columns, one panel each, against ``x_key`` to a PNG.

    Args:
        history: Rows of numbers (dicts), one per round.
        path: Output PNG path.
        keys: Columns to plot (default: every numeric column except ``x_key``).
        x_key: Column on the horizontal axis (falls back to the row index).
        title: Figure title.
        log_keys: Columns drawn on a log scale.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("nothing to plot: the history is empty")
    if keys is None:
        keys = [
            k for k, v in history[0].items() if k != x_key and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
    xs = [row.get(x_key, i) for i, row in enumerate(history)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys) + 0.6), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        ys = [row.get(key, float("nan")) for row in history]
        ax.plot(xs, ys, marker=".", lw=1)
        ax.set_ylabel(key)
        if key in log_keys:
            ax.set_yscale("symlog")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x_key if x_key in history[0] else "round")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path: os.PathLike, *, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders created) and close it.

    Args:
        fig: A matplotlib figure.
        path: Output PNG path.
        dpi: Resolution.

    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
