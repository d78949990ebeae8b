"""One basin-hopping loop, pele-style: proposal, quench, acceptance and storage are passed in.

:class:`BasinHoppingLoop` runs ``B`` walkers. Each walker holds its current
minimum; the loop asks the *step proposal* for new configurations of the
walkers that are idle, hands them to the *quench*, and judges every quench
that finishes with the *acceptance* rule, storing each minimum in the
*minima store*. What is being minimised (a cluster in Cartesian space, a
peptide moved by torsion pivots) lives only in the pieces:

* proposal: ``propose(walkers: list[Walker]) -> list of configurations``;
  optional ``record(walkers, accepted: list[bool])`` after each judged hop
  (step-size control), ``state_dict()`` / ``load_state_dict()``.
* quench (:class:`Quench`): ``reset(rows, configurations, phase)`` starts
  quenching (``phase`` is ``"start"`` or ``"hop"``); ``step(deadline)``
  advances and returns the rows that finished (:class:`Quenched`). A batched
  torch L-BFGS quench is *streamed* (one step is one batched force call; a row
  finishes whenever its own quench has converged), an OpenMM quench finishes
  one configuration per step. Optional ``lowest()`` gives the lowest
  configuration still in flight, for a run in which no quench finished.
* acceptance: ``accept(e_new [k], e_old [k], generator) -> bool [k]``
  (:class:`~.steps.Metropolis`); a rule that keeps state per walker defines
  ``accept_rows(rows, e_new, e_old, generator)`` instead, which the loop
  then calls with the walkers' rows (:class:`~.steps.OccasionalJumping`).
* storage: ``add(x, energy)``, ``minima``, ``state_dict()``,
  ``load_state_dict()`` (:class:`~.steps.MinimaDatabase`).
* restart rule (optional): ``restart(walkers, finished, loop)`` after each
  batch of judged hops moves walkers in place (:class:`ResetToBest`,
  :class:`~.steps.GoWithTheWinners`); it may read ``loop.storage``,
  ``loop.best_x``, ``loop.best_e``, ``loop.generator`` and count events in
  ``loop.counters``.
* polish (optional): ``polish(candidates [(x, energy)], deadline) -> (x,
  energy, info)`` turns the lowest stored minima (the best first) into the
  answer at the end, by ``deadline``.

The shared bookkeeping lives here once: the starts (walker ``w`` quenches
``starts[w::B]`` and keeps the lowest before it hops; while more starts than
walkers remain, each quench gets its share of the time left), the wall-clock budget
(checked in the loop *and* passed to every quench and to the polish, so that
no stage overruns), success at a target energy, history rows, the progress
bar, and checkpoints through :mod:`openmm_actionmin.checkpoints` (the pieces
supply their own state). Quenches in flight when a checkpoint is written are
restarted from fresh proposals on resume; a quench that finishes one
configuration per step has none in flight, so such a run resumes exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import torch

from .. import checkpoints
from ..progress import budget_bar, progress_bar, show_elapsed


@dataclasses.dataclass
class Quenched:
    """One finished quench.

    Attributes:
        row: The quench row (= walker index).
        x: The quenched configuration.
        energy: Its energy.
        valid: Whether it counts as a minimum (converged, not evaporated);
            an invalid one is scored as infinite energy.
    """

    row: int
    x: Any
    energy: float
    valid: bool = True


class Quench(Protocol):
    """What the loop needs of a quench (see the module docstring)."""

    def reset(self, rows: Sequence[int], configs: Sequence[Any], phase: str) -> None:
        """Start quenching ``configs`` in ``rows``."""

    def step(self, deadline: Optional[float]) -> List[Quenched]:
        """Advance; return the rows that finished."""


@dataclasses.dataclass
class Walker:
    """One chain of the loop.

    Attributes:
        index: Its row in the quench.
        x: Current minimum (``None`` before its first quench finished).
        energy: Its energy (``inf``: no valid minimum yet).
        hops: Hops judged (start quenches excluded).
        starts: Start configurations still to quench.
        busy: Whether a quench of this walker is in flight.
    """

    index: int
    x: Any = None
    energy: float = math.inf
    hops: int = 0
    starts: List[Any] = dataclasses.field(default_factory=list)
    busy: bool = False


@dataclasses.dataclass
class LoopSettings:
    """Limits and bookkeeping of :class:`BasinHoppingLoop`.

    Attributes:
        budget_s: Wall-clock budget of the whole run, start quenches and
            polish included (``None``: no limit).
        polish_reserve_s: Seconds at the end of the budget kept for the polish.
        max_steps: Hops per walker (``None``: no limit); the run stops when
            every walker has made this many.
        max_force_calls: Force calls in all (``None``: no limit).
        target_energy: Energy counted as success (``None``: none).
        target_tolerance: Success if ``energy <= target + tolerance``.
        stop_at_target: Stop at the first minimum counted as success.
        polish_candidates: Lowest stored minima handed to the polish.
        sweep_rows: Write a ``"sweep"`` history event every ``B`` hops.
        checkpoint_path: Checkpoint file (``None``: none).
        checkpoint_interval_s: Seconds between checkpoints.
        resume: Continue from ``checkpoint_path`` when it exists.
        identity: The run's :class:`~openmm_actionmin.checkpoints.RunIdentity`.
        progress: Show a progress bar.
        label: Label of the bar and of warnings.
    """

    budget_s: Optional[float] = None
    polish_reserve_s: float = 0.0
    max_steps: Optional[int] = None
    max_force_calls: Optional[int] = None
    target_energy: Optional[float] = None
    target_tolerance: float = 1e-4
    stop_at_target: bool = False
    polish_candidates: int = 1
    sweep_rows: bool = False
    checkpoint_path: Optional[str] = None
    checkpoint_interval_s: float = 60.0
    resume: bool = False
    identity: Optional[checkpoints.RunIdentity] = None
    progress: bool = False
    label: str = "basin hopping"

    def __post_init__(self) -> None:
        if self.budget_s is None and self.max_steps is None and self.max_force_calls is None:
            raise ValueError("basin hopping needs a limit: set budget_s, max_steps or max_force_calls")
        if self.polish_reserve_s < 0 or self.polish_candidates < 1:
            raise ValueError("polish_reserve_s must be >= 0 and polish_candidates >= 1")


@dataclasses.dataclass
class HopOutcome:
    """What :meth:`BasinHoppingLoop.run` returns.

    Attributes:
        x: The answer (polished lowest minimum, or the search's best).
        energy: Its energy.
        search_energy: The lowest energy found by the search (before polish).
        polish_info: What the polish returned besides ``(x, energy)``.
        walkers: The walkers at the end.
        hops: Hops judged in all.
        accepted: Hops accepted.
        history: History rows.
        time_to_target_s: Seconds to the first success (``None``: none).
        force_calls_to_target: Force calls to the first success.
        stop_reason: ``"target"``, ``"budget"``, ``"max_steps"`` or ``"max_force_calls"``.
        search_s: Seconds of the search (before the polish).
        wall_s: Seconds of the whole run (elapsed before a resume included).
        force_calls: Force calls of the whole run.
        resumed: Whether it continued a checkpoint.
        unfinished: No quench finished; ``x`` is the lowest configuration in flight.
        counters: Named counters kept by the loop (``reseeded``, ``resets``).
    """

    x: Any
    energy: float
    search_energy: float
    polish_info: Any
    walkers: List[Walker]
    hops: int
    accepted: int
    history: List[Dict[str, Any]]
    time_to_target_s: Optional[float]
    force_calls_to_target: Optional[int]
    stop_reason: str
    search_s: float
    wall_s: float
    force_calls: int
    resumed: bool
    unfinished: bool
    counters: Dict[str, int]

    @property
    def acceptance_rate(self) -> float:
        """Accepted hops over judged hops (0 without hops)."""
        return self.accepted / max(self.hops, 1)


#: Seconds between progress-bar redraws.
_BAR_EVERY_S = 0.2


class BasinHoppingLoop:
    """Basin hopping assembled from pieces (see the module docstring).

    Args:
        starts: Start configurations; walker ``w`` quenches ``starts[w::B]``
            and begins from the lowest of them (at least ``B`` are needed).
        n_walkers: Number of walkers ``B`` (the quench's rows).
        step: Step proposal.
        quench: Quench (:class:`Quench`).
        acceptance: Acceptance rule.
        storage: Minima store.
        generator: Torch generator of the acceptance and restart rules (its
            state is checkpointed).
        force_calls: Force calls made so far by this process (a counter).
        settings: :class:`LoopSettings`.
        restart: Optional restart rule.
        polish: Optional polish (without one the answer is the best minimum).
        history_row: ``(event, info) -> row or None``; events are
            ``"start"`` (the starts are quenched), ``"hop"``, ``"sweep"`` and
            ``"end"``; ``info`` has ``wall_s``, ``best_energy``, ``energy``,
            ``accepted``, ``hops``, ``force_calls``, ``acceptance`` and
            ``distinct_minima`` (default: no rows).
        on_best: Called with the best configuration whenever it changes.
        save_extra: State of the caller added to checkpoints.
        load_extra: Receives that state on resume.
    """

    def __init__(
        self,
        *,
        starts: Sequence[Any],
        n_walkers: int,
        step: Any,
        quench: Quench,
        acceptance: Any,
        storage: Any,
        generator: torch.Generator,
        force_calls: Callable[[], int],
        settings: LoopSettings,
        restart: Any = None,
        polish: Any = None,
        history_row: Optional[Callable[[str, Dict[str, Any]], Optional[Dict[str, Any]]]] = None,
        on_best: Optional[Callable[[Any], None]] = None,
        save_extra: Optional[Callable[[], Dict[str, Any]]] = None,
        load_extra: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> None:
        if n_walkers < 1:
            raise ValueError(f"n_walkers must be >= 1, got {n_walkers}")
        self.n_walkers = int(n_walkers)
        self.starts = list(starts)
        self.step = step
        self.quench = quench
        self.acceptance = acceptance
        self.storage = storage
        self.generator = generator
        self.force_calls = force_calls
        self.settings = settings
        self.restart = restart
        self.polish = polish
        self.history_row = history_row
        self.on_best = on_best
        self.save_extra = save_extra
        self.load_extra = load_extra

    # ------------------------------------------------------------ internals
    def _fresh(self) -> None:
        b = self.n_walkers
        if len(self.starts) < b:
            raise ValueError(f"basin hopping needs a start for each of its {b} walkers, got {len(self.starts)}")
        self.walkers = [Walker(w, starts=self.starts[w::b]) for w in range(b)]
        self.best_x, self.best_e = None, math.inf
        self.hops = self.accepted = 0
        self.history: List[Dict[str, Any]] = []
        self.t_target: Optional[float] = None
        self.calls_target: Optional[int] = None
        self.counters: Dict[str, int] = {}
        self.elapsed_before, self.calls_before = 0.0, 0
        self.started = False

    def _load(self, state: Dict[str, Any]) -> None:
        if len(state["walkers"]) != self.n_walkers:
            raise checkpoints.CheckpointMismatch(
                f"checkpoint {self.settings.checkpoint_path} has {len(state['walkers'])} walkers, this run "
                f"{self.n_walkers}; "
                f"use n_walkers={len(state['walkers'])}, delete the file or choose another checkpoint path"
            )
        self.walkers = [Walker(w["index"], w["x"], w["energy"], w["hops"], list(w["starts"])) for w in state["walkers"]]
        self.best_x, self.best_e = state["best_x"], state["best_e"]
        self.hops, self.accepted = state["hops"], state["accepted"]
        self.history = state["history"]
        self.t_target, self.calls_target = state["t_target"], state["calls_target"]
        self.counters = state["counters"]
        self.elapsed_before, self.calls_before = state["elapsed_s"], state["force_calls"]
        self.started = state["started"]
        self.storage.load_state_dict(state["storage"])
        self.generator.set_state(state["generator"])
        for name, piece in self._pieces():
            if name in state["pieces"]:
                piece.load_state_dict(state["pieces"][name])
        if self.load_extra is not None:
            self.load_extra(state.get("extra", {}))

    def _pieces(self) -> List[Tuple[str, Any]]:
        named = (
            ("step", self.step),
            ("quench", self.quench),
            ("acceptance", self.acceptance),
            ("restart", self.restart),
            ("polish", self.polish),
        )
        return [
            (k, p) for k, p in named if p is not None and hasattr(p, "state_dict") and hasattr(p, "load_state_dict")
        ]

    def _save(self) -> None:
        s = self.settings
        if s.checkpoint_path is None:
            return
        checkpoints.save(
            Path(s.checkpoint_path),
            identity=s.identity,
            state={
                "walkers": [
                    {"index": w.index, "x": w.x, "energy": w.energy, "hops": w.hops, "starts": w.starts}
                    for w in self.walkers
                ],
                "best_x": self.best_x,
                "best_e": self.best_e,
                "hops": self.hops,
                "accepted": self.accepted,
                "history": self.history,
                "t_target": self.t_target,
                "calls_target": self.calls_target,
                "counters": self.counters,
                "elapsed_s": self.elapsed(),
                "force_calls": self.calls(),
                "started": self.started,
                "storage": self.storage.state_dict(),
                "generator": self.generator.get_state(),
                "pieces": {name: piece.state_dict() for name, piece in self._pieces()},
                "extra": self.save_extra() if self.save_extra is not None else {},
            },
        )

    def elapsed(self) -> float:
        """Seconds of the run so far (elapsed before a resume included)."""
        return time.perf_counter() - self.t0

    def calls(self) -> int:
        """Force calls of the run so far."""
        return self.calls_before + self.force_calls() - self.calls0

    def _info(self, energy: float = math.nan, accepted: Optional[bool] = None) -> Dict[str, Any]:
        return {
            "wall_s": self.elapsed(),
            "best_energy": self.best_e,
            "energy": energy,
            "accepted": accepted,
            "hops": self.hops,
            "force_calls": self.calls(),
            "acceptance": self.accepted / max(self.hops, 1),
            "distinct_minima": len(self.storage),
        }

    def _record(self, event: str, info: Dict[str, Any]) -> None:
        if self.history_row is not None:
            row = self.history_row(event, info)
            if row is not None:
                self.history.append(row)

    def _new_best(self, x: Any, energy: float) -> None:
        self.best_x, self.best_e = x, energy
        s = self.settings
        if s.target_energy is not None and self.t_target is None and energy <= s.target_energy + s.target_tolerance:
            self.t_target = self.elapsed()
            self.calls_target = self.calls()
        if self.on_best is not None:
            self.on_best(x)

    def _feed(self) -> None:
        """Give every idle walker its next start or a proposal (a start leaves the list when its quench finishes)."""
        idle = [w for w in self.walkers if not w.busy]
        if not idle:
            return
        first = [w for w in idle if w.starts]
        if first:
            self.quench.reset([w.index for w in first], [w.starts[0] for w in first], "start")
            for w in first:
                w.busy, self._phase[w.index] = True, "start"
        hoppers = [w for w in idle if not w.busy]
        if hoppers:
            configs = self.step.propose(hoppers)
            self.quench.reset([w.index for w in hoppers], configs, "hop")
            for w in hoppers:
                w.busy, self._phase[w.index] = True, "hop"

    def _quench_deadline(self, hop_deadline: Optional[float]) -> Optional[float]:
        """The hop deadline, or while starts remain, an equal share of the time left per start."""
        if hop_deadline is None:
            return None
        left = sum(len(w.starts) for w in self.walkers)
        if left <= self.n_walkers:
            return hop_deadline
        now = time.perf_counter()
        return now + max(hop_deadline - now, 0.0) * self.n_walkers / left

    def _judge(self, done: List[Quenched]) -> None:
        """Storage, best, acceptance and restarts for the finished quenches."""
        starts, hops = [], []
        for q in done:
            w = self.walkers[q.row]
            w.busy = False
            energy = q.energy if q.valid and math.isfinite(q.energy) else math.inf
            if math.isfinite(energy):
                self.storage.add(q.x, energy)
            if energy < self.best_e or (self.best_x is None and q.x is not None):
                self._new_best(q.x, energy)
            (starts if self._phase.get(q.row) == "start" else hops).append((w, q, energy))
        for w, q, energy in starts:  # a walker begins from the lowest of its starts
            w.starts.pop(0)
            if w.x is None or energy < w.energy:
                w.x, w.energy = q.x, energy
        if not hops:
            return
        walkers = [w for w, _, _ in hops]
        e_new = torch.tensor([e for _, _, e in hops], dtype=torch.float64)
        e_old = torch.tensor([w.energy for w in walkers], dtype=torch.float64)
        if hasattr(self.acceptance, "accept_rows"):
            acc = self.acceptance.accept_rows([w.index for w in walkers], e_new, e_old, self.generator).tolist()
        else:
            acc = self.acceptance.accept(e_new, e_old, self.generator).tolist()
        for (w, q, energy), ok in zip(hops, acc):
            if ok:
                w.x, w.energy = q.x, energy
            w.hops += 1
        self.hops += len(hops)
        self.accepted += int(sum(acc))
        if hasattr(self.step, "record"):
            self.step.record(walkers, acc)
        if self.restart is not None:
            self.restart.restart(self.walkers, walkers, self)
        for (w, q, energy), ok in zip(hops, acc):
            self._record("hop", self._info(energy, bool(ok)))
        if self.settings.sweep_rows:
            b = self.n_walkers
            if self.hops // b > (self.hops - len(hops)) // b:
                self._record("sweep", self._info())

    # ------------------------------------------------------------------ run
    def run(self, spent_s: float = 0.0) -> HopOutcome:
        """Run until a limit, then polish; see :class:`HopOutcome`.

        Args:
            spent_s: Seconds the caller already spent on this run (building
                starts); they count against the budget and in wall times.
        """
        s = self.settings
        state = None
        if s.checkpoint_path is not None and s.resume:
            state = checkpoints.load(Path(s.checkpoint_path), s.identity)
        if state is None:
            self._fresh()
        else:
            self._load(state)
        resumed = state is not None
        self.calls0 = self.force_calls()
        self.t0 = time.perf_counter() - self.elapsed_before - (0.0 if resumed else spent_s)
        deadline = None if s.budget_s is None else self.t0 + float(s.budget_s)
        hop_deadline = None if deadline is None else deadline - s.polish_reserve_s
        self._phase: Dict[int, str] = {}
        bar, last_bar = None, 0.0
        if s.progress:
            if s.budget_s is not None:
                bar = budget_bar(s.budget_s, s.label)
            else:
                total = None if s.max_steps is None else s.max_steps * self.n_walkers
                bar = progress_bar(total=total, desc=s.label, unit="hop", initial=self.hops)
        last_ckpt = time.perf_counter()
        stop_reason = "budget"
        stepped = False
        try:
            while True:
                all_started = all(not w.starts and w.x is not None for w in self.walkers)
                if all_started and not self.started:
                    self.started = True
                    self._record("start", self._info(self.best_e, True))
                if s.stop_at_target and self.t_target is not None:
                    stop_reason = "target"
                    break
                if stepped and hop_deadline is not None and time.perf_counter() >= hop_deadline:
                    stop_reason = "budget"
                    break
                if s.max_steps is not None and all_started and min(w.hops for w in self.walkers) >= s.max_steps:
                    stop_reason = "max_steps"
                    break
                if s.max_force_calls is not None and self.calls() >= s.max_force_calls:
                    stop_reason = "max_force_calls"
                    break
                self._feed()
                done = self.quench.step(self._quench_deadline(hop_deadline))
                stepped = True
                if done:
                    self._judge(done)
                if bar is not None and time.perf_counter() - last_bar >= _BAR_EVERY_S:
                    last_bar = time.perf_counter()
                    if s.budget_s is not None:
                        show_elapsed(bar, self.elapsed(), f"best {self.best_e:.6g}")
                    else:
                        bar.n = self.hops
                        bar.set_postfix_str(f"best {self.best_e:.6g}", refresh=False)
                        bar.refresh()
                if s.checkpoint_path is not None and time.perf_counter() - last_ckpt >= s.checkpoint_interval_s:
                    self._save()
                    last_ckpt = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        search_s = self.elapsed()
        search_e = self.best_e
        self._save()
        unfinished = False
        if self.best_x is None:
            lowest = self.quench.lowest() if hasattr(self.quench, "lowest") else None
            if lowest is None:
                raise RuntimeError(f"{s.label}: no configuration was quenched; raise budget_s")
            self.best_x, self.best_e = lowest
            search_e = self.best_e
            unfinished = True
            warnings.warn(
                f"{s.label} finished no quench within {s.budget_s} s; the result is the lowest configuration "
                "reached, not a minimum: raise budget_s",
                RuntimeWarning,
                stacklevel=3,
            )
        end = self._info(self.best_e, True)
        x, energy, info = self.best_x, self.best_e, None
        if self.polish is not None:
            cands = [] if unfinished else [(m.x, m.energy) for m in self.storage.minima[: s.polish_candidates]]
            if not cands or self.best_e < cands[0][1]:
                cands.insert(0, (self.best_x, self.best_e))
            x, energy, info = self.polish.polish(cands, deadline)
        self._record(
            "end",
            {
                **end,
                "x": x,
                "energy": energy,
                "best_energy": min(energy, search_e),
                "search_wall_s": search_s,
                "search_force_calls": end["force_calls"],
                "wall_s": self.elapsed(),
                "force_calls": self.calls(),
            },
        )
        return HopOutcome(
            x=x,
            energy=energy,
            search_energy=search_e,
            polish_info=info,
            walkers=self.walkers,
            hops=self.hops,
            accepted=self.accepted,
            history=self.history,
            time_to_target_s=self.t_target,
            force_calls_to_target=self.calls_target,
            stop_reason=stop_reason,
            search_s=search_s,
            wall_s=self.elapsed(),
            force_calls=self.calls(),
            resumed=resumed,
            unfinished=unfinished,
            counters=self.counters,
        )


@dataclasses.dataclass
class ResetToBest:
    """Send every walker back to the best minimum after ``after`` hops without a new best.

    Attributes:
        after: Hops without an improvement of more than ``tolerance`` (0: never).
        tolerance: Smallest energy drop counted as a new best.
    """

    after: int = 100
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        self.since_best = 0
        self.reference = math.inf

    def restart(self, walkers: List[Walker], finished: List[Walker], loop: BasinHoppingLoop) -> None:
        """Count the hops of ``finished``; reset ``walkers`` when due (counted in ``loop.counters["resets"]``)."""
        if loop.best_e < self.reference - self.tolerance:
            self.reference, self.since_best = loop.best_e, 0
            return
        self.since_best += len(finished)
        if self.after and self.since_best >= self.after and loop.best_x is not None:
            for w in walkers:
                w.x, w.energy = loop.best_x, loop.best_e
            self.since_best = 0
            loop.counters["resets"] = loop.counters.get("resets", 0) + 1

    def state_dict(self) -> Dict[str, Any]:
        """Counters for checkpoints."""
        return {"since_best": self.since_best, "reference": self.reference}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.since_best, self.reference = int(state["since_best"]), float(state["reference"])
