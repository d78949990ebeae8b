"""Progress bars for long runs: tqdm on a terminal, a few lines in a log.

Every long-running search shows a tqdm bar when ``progress=True``. On a terminal
the bar redraws as tqdm does (at most every 0.1 s). When the bar writes to a file
that is not a terminal (a log, CI, a batch job), each redraw is a new line of
text, so there it redraws at most every :data:`LOG_INTERVAL_S` seconds: a
450 s run writes about 15 redraws instead of up to 4500. Notebook bars
(``tqdm.auto`` in Jupyter) are widgets and keep tqdm's own interval.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

#: Seconds between redraws of a bar that writes to a file which is not a terminal.
LOG_INTERVAL_S = 30.0


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def progress_bar(**kwargs: Any):
    """A ``tqdm.auto`` bar that redraws rarely when its output is not a terminal.

    Args:
        **kwargs: Any ``tqdm`` argument (``total``, ``desc``, ``unit``, ``file``, ...).
            An explicit ``mininterval`` is kept as given.

    Returns:
        The tqdm bar (close it, or use it as a context manager).
    """
    from tqdm.auto import tqdm

    widget = tqdm.__module__.startswith("tqdm.notebook")
    if not widget and not _is_terminal(kwargs.get("file") or sys.stderr):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
    return tqdm(**kwargs)


def budget_bar(budget_s: float, desc: str, **kwargs: Any):
    """A :func:`progress_bar` that counts the wall-clock seconds of a budget.

    Advance it with :func:`show_elapsed`. The bar's ``t0`` attribute holds
    ``time.perf_counter()`` at creation, for callers without a clock of their own.

    Args:
        budget_s: The budget in seconds (the bar's total).
        desc: The bar's label.
        **kwargs: Any other ``tqdm`` argument.

    Returns:
        The tqdm bar.
    """
    bar = progress_bar(
        total=round(float(budget_s), 1),
        desc=desc,
        unit="s",
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}",
        **kwargs,
    )
    bar.t0 = time.perf_counter()
    return bar


def show_elapsed(bar, elapsed_s: float, postfix: Optional[str] = None) -> None:
    """Set a :func:`budget_bar` to ``elapsed_s`` seconds (capped at its total) and redraw it.

    Args:
        bar: A bar from :func:`budget_bar`.
        elapsed_s: Seconds of the budget spent.
        postfix: Text shown after the count (e.g. the best energy so far).
    """
    bar.n = min(round(float(elapsed_s), 1), bar.total)
    if postfix is not None:
        bar.set_postfix_str(postfix, refresh=False)
    bar.refresh()
