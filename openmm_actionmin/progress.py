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
from typing import Any

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
