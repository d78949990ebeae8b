"""The one basin-hopping loop on its own: a 1-D double well with toy pieces."""

import math
import time

import numpy as np
import pytest
import torch

from openmm_actionmin.search.hopping import BasinHoppingLoop, LoopSettings, Quenched, ResetToBest
from openmm_actionmin.search.steps import Metropolis, MinimaDatabase

#: Minima of the tilted double well ``(x^2 - 1)^2 + 0.3 x``.
LEFT, RIGHT = -1.0361, 0.9611


def energy(x: float) -> float:
    return (x * x - 1.0) ** 2 + 0.3 * x


E_LEFT, E_RIGHT = energy(LEFT), energy(RIGHT)


class Step:
    """Uniform displacement of half-width ``size``."""

    def __init__(self, size: float, seed: int = 0) -> None:
        self.size = size
        self.gen = torch.Generator().manual_seed(seed)
        self.recorded = []

    def propose(self, walkers):
        u = torch.rand(len(walkers), generator=self.gen, dtype=torch.float64).tolist()
        return [np.array([w.x[0] + self.size * (2.0 * v - 1.0)]) for w, v in zip(walkers, u)]

    def record(self, walkers, accepted):
        self.recorded.append((tuple(w.index for w in walkers), tuple(accepted)))

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])


class Quench:
    """Rolls to the minimum on its side of the barrier; row ``r`` takes ``delays[r]`` steps (streamed)."""

    def __init__(self, delays, sleep_s: float = 0.0) -> None:
        self.delays = list(delays)
        self.sleep_s = sleep_s
        self.inflight = {}
        self.calls = 0
        self.deadlines = []
        self.phases = []

    def reset(self, rows, configs, phase):
        for r, c in zip(rows, configs):
            self.inflight[r] = [np.asarray(c, dtype=np.float64), self.delays[r]]
            self.phases.append((r, phase))

    def step(self, deadline):
        self.deadlines.append(deadline)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        out = []
        for r in sorted(self.inflight):
            self.calls += 1
            self.inflight[r][1] -= 1
            if self.inflight[r][1] <= 0:
                x = self.inflight.pop(r)[0]
                m = LEFT if x[0] < 0.0 else RIGHT
                out.append(Quenched(r, np.array([m]), energy(m), True))
        return out


class Polish:
    def __init__(self) -> None:
        self.seen = None

    def polish(self, candidates, deadline):
        self.seen = (list(candidates), deadline)
        x, e = candidates[0]
        return x, e, "polished"


def make_loop(
    starts,
    n_walkers=1,
    *,
    delays=None,
    step_size=0.5,
    temperature=0.5,
    seed=0,
    sleep_s=0.0,
    polish=None,
    rows=None,
    **settings,
):
    quench = Quench(delays or [1] * n_walkers, sleep_s)
    step = Step(step_size, seed)

    def history_row(event, info):
        if rows is not None:
            rows.append((event, info))
        return {"event": event, "best_energy": info["best_energy"], "wall_s": info["wall_s"]}

    loop = BasinHoppingLoop(
        starts=[np.array([s]) for s in starts],
        n_walkers=n_walkers,
        step=step,
        quench=quench,
        acceptance=Metropolis(temperature),
        storage=MinimaDatabase(5, energy_tol=1e-6, fingerprint_tol=None),
        generator=torch.Generator().manual_seed(seed + 7),
        force_calls=lambda: quench.calls,
        settings=LoopSettings(**settings),
        polish=polish,
        history_row=history_row,
    )
    return loop, quench, step


def test_finds_the_lower_well_from_the_upper():
    loop, quench, step = make_loop([0.9], max_steps=40, step_size=1.5)
    out = loop.run()
    assert out.energy == pytest.approx(E_LEFT) and out.x[0] == pytest.approx(LEFT)
    assert out.hops == 40 and out.stop_reason == "max_steps"
    assert 0 < out.accepted <= out.hops and out.acceptance_rate == out.accepted / out.hops
    assert out.force_calls == quench.calls == 41  # the start quench and 40 hops, one step each
    assert sum(len(w) for w, _ in step.recorded) == 40
    assert loop.storage.energies == pytest.approx([E_LEFT, E_RIGHT])
    events = [r["event"] for r in out.history]
    assert events[0] == "start" and events[-1] == "end" and events.count("hop") == 40
    assert all(b["best_energy"] <= a["best_energy"] for a, b in zip(out.history, out.history[1:]))


def test_walkers_stream_and_begin_from_their_lowest_start():
    # walker 0 quenches starts 0.8 and -0.8 (keeps the lower), walker 1 quenches 0.5; row 1 is three times slower
    loop, quench, _ = make_loop(
        [0.8, 0.5, -0.8], n_walkers=2, delays=[1, 3], temperature=0.0, step_size=0.1, max_steps=3
    )
    out = loop.run()
    assert [p for p in quench.phases[:3]] == [(0, "start"), (1, "start"), (0, "start")]
    assert out.walkers[0].energy == pytest.approx(E_LEFT)  # began from the lower start, T = 0 keeps it
    assert out.walkers[1].energy == pytest.approx(E_RIGHT)
    assert min(w.hops for w in out.walkers) == 3
    assert out.walkers[0].hops > out.walkers[1].hops  # the fast row kept hopping while the slow one quenched


def test_target_stops_and_is_timed():
    loop, _, _ = make_loop(
        [0.9], max_steps=1000, step_size=1.5, target_energy=E_LEFT, target_tolerance=1e-9, stop_at_target=True
    )
    out = loop.run()
    assert out.stop_reason == "target" and out.hops < 1000
    assert out.time_to_target_s is not None and 0 < out.force_calls_to_target <= out.force_calls
    assert out.energy == pytest.approx(E_LEFT)


def test_budget_is_kept_and_passed_to_the_quench_and_polish():
    polish = Polish()
    t = time.perf_counter()
    loop, quench, _ = make_loop([0.9], budget_s=0.5, polish_reserve_s=0.1, sleep_s=0.01, polish=polish)
    out = loop.run()
    wall = time.perf_counter() - t
    assert out.stop_reason == "budget" and wall < 0.5 + 0.1
    deadline = polish.seen[1]
    assert all(d is not None and d <= deadline - 0.1 + 1e-9 for d in quench.deadlines)  # hops leave the polish its time
    assert polish.seen[0][0][1] == pytest.approx(out.search_energy)  # the best candidate first
    assert out.polish_info == "polished" and out.wall_s == pytest.approx(wall, abs=0.05)


def test_starts_share_the_time_before_hopping():
    loop, quench, _ = make_loop([0.9, 0.8, 0.7, 0.6], budget_s=0.4, sleep_s=0.01)
    t = time.perf_counter()
    loop.run()
    first = quench.deadlines[0] - t
    assert first == pytest.approx(0.4 / 4, abs=0.05)  # four starts, one walker: a quarter each


def test_checkpoint_resume_continues_the_same_walk(tmp_path):
    ref, _, _ = make_loop([0.9], max_steps=12, step_size=1.5, seed=3)
    whole = ref.run()
    ck = str(tmp_path / "loop.pt")
    first, _, _ = make_loop([0.9], max_steps=5, step_size=1.5, seed=3, checkpoint_path=ck)
    assert first.run().hops == 5
    again, _, _ = make_loop([0.9], max_steps=12, step_size=1.5, seed=3, checkpoint_path=ck, resume=True)
    out = again.run()
    assert out.resumed and out.hops == 12
    assert out.accepted == whole.accepted and out.energy == whole.energy
    assert [r["best_energy"] for r in out.history] == [r["best_energy"] for r in whole.history]
    with pytest.raises(ValueError, match="walkers"):
        make_loop([0.9, 0.9], n_walkers=2, max_steps=12, checkpoint_path=ck, resume=True)[0].run()


def test_reset_to_best_and_limits():
    loop, _, _ = make_loop([0.9], max_steps=30, step_size=0.05, temperature=1e6)
    loop.restart = ResetToBest(after=5)
    out = loop.run()
    assert out.counters["resets"] >= 1
    with pytest.raises(ValueError, match="needs a limit"):
        LoopSettings()
    with pytest.raises(ValueError, match="a start for each"):
        make_loop([0.9], n_walkers=2, max_steps=1)[0].run()
    assert math.isfinite(out.energy)
