"""Progress bars: tqdm's redraw rate on a terminal, a few lines in a log."""

import io
import time

from openmm_actionmin.progress import LOG_INTERVAL_S, budget_bar, progress_bar, show_elapsed


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def redraws(stream: io.StringIO) -> int:
    return stream.getvalue().count("\r")


def test_a_bar_writing_to_a_log_redraws_rarely_and_a_terminal_bar_keeps_tqdm_rate():
    log, terminal = io.StringIO(), FakeTerminal()
    bars = [progress_bar(total=12, desc="run", file=stream, miniters=1) for stream in (log, terminal)]
    assert bars[0].mininterval == LOG_INTERVAL_S and bars[1].mininterval < 1.0
    for _ in range(12):
        time.sleep(0.12)  # longer than tqdm's own interval (0.1 s)
        for bar in bars:
            bar.update(1)
    for bar in bars:
        bar.close()
    assert "run" in log.getvalue() and "12/12" in log.getvalue()  # first and last state still written
    assert redraws(log) <= 3
    assert redraws(terminal) >= 10


def test_an_explicit_interval_is_kept():
    bar = progress_bar(total=1, file=io.StringIO(), mininterval=0.5)
    assert bar.mininterval == 0.5
    bar.close()


def test_a_budget_bar_shows_seconds_capped_at_the_budget_and_its_postfix():
    log = io.StringIO()
    bar = budget_bar(60, "anneal", file=log)
    show_elapsed(bar, 12.34, "best -1.5 kJ/mol")
    assert bar.n == 12.3
    assert "12/60 s, best -1.5 kJ/mol" in log.getvalue()
    show_elapsed(bar, 75.0)
    assert bar.n == 60
    bar.close()
