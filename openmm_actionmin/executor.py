"""Many runs at once: jobs, a results file that resumes, and three executors.

A :class:`Job` is one run of :func:`openmm_actionmin.minimize`: a target
given as a string (a cluster name ``"LJ38"``, a function ``"alpine1:50"``, a
PDB path), a registered method, a seed, a budget and the method's options. It
pickles in a few hundred bytes; every system, oracle and OpenMM Context is
built inside the worker that runs the job, never copied between processes.

:func:`minimize_many` runs a list of jobs and appends one strict-JSON row per
finished job to a results file (JSON Lines) as soon as the job finishes,
flushed and ``fsync``-ed, so the file holds every finished job even when the
client is killed. Jobs whose key already has a row in the file are not run
again: running the same list again resumes it. A job of a method that
checkpoints (``registry.METHODS[name].checkpoints``) gets its own checkpoint
``checkpoint_dir/<key>.ckpt``; a job that is interrupted (its worker died, the
client was killed) resumes from it when it runs again, and no two jobs share
one.

Executors:

* ``"serial"``: one job after another in this process.
* ``"processes"``: :class:`concurrent.futures.ProcessPoolExecutor` with the
  ``spawn`` start method on this machine's cores.
* ``"dask"``: :mod:`dask.distributed` futures; a ``LocalCluster`` of worker
  processes by default, or any running scheduler by address (a cluster of
  machines started by ``dask-jobqueue``, ``dask-ssh`` or by hand; see
  ``docs/scale.md``). Dask reruns a job whose worker died and retries a job
  that raised (``retries``). Install with ``pip install openmm_actionmin[dask]``.

Every job runs with ``threads_per_job`` threads for torch and OpenMM (the
``threads`` option of peptide methods, ``num_threads`` of cluster basin
hopping), and the workers this module starts get ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (...) of the same value before
NumPy loads, so that N workers on N cores do not oversubscribe them. Workers
of a scheduler started elsewhere keep their own environment (Dask's nanny
sets these variables to 1 by default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import socket
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .fileio import to_jsonable

__all__ = ["EXECUTORS", "Job", "make_jobs", "minimize_many", "read_rows", "run_job", "summarize"]

#: Executors of :func:`minimize_many`.
EXECUTORS = ("serial", "processes", "dask")

#: Seconds to wait for a Dask scheduler given by address.
SCHEDULER_TIMEOUT_S = 5.0

#: Environment variables that size the thread pools of native libraries.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENMM_CPU_THREADS",
)

#: Fields of the Result's ``extra`` copied into a row where present.
EXTRA_FIELDS = ("success", "target_energy", "time_to_target_s", "force_calls_to_target", "stop_reason")


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of :func:`openmm_actionmin.minimize`.

    Attributes:
        target: What to minimise, as a string: a cluster name (``"LJ38"``),
            a function with its dimension (``"alpine1:50"``) or a PDB path
            (readable by every worker).
        method: A registered method for that kind of target.
        seed: Seed of the run (0 to 2**32 - 1).
        budget_s: Wall-clock budget in seconds, or ``None`` for a run bounded
            by a method option (``max_steps``, ``max_rounds``), which is
            reproducible on any worker.
        options: The method's settings (JSON values: numbers, strings,
            booleans, lists, ``None``).
        name: A label for tables (default ``target/method/seed``); not part
            of the key.
    """

    target: str
    method: str
    seed: int = 0
    budget_s: Optional[float] = 60.0
    options: Dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    name: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        from .registry import check_budget, check_seed, get_method

        if isinstance(self.target, os.PathLike):
            object.__setattr__(self, "target", os.fspath(self.target))
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(
                f"a job's target is a string (a cluster name, 'function:dim' or a PDB path), got {self.target!r}"
            )
        object.__setattr__(self, "seed", check_seed(self.seed))
        if self.budget_s is not None:
            object.__setattr__(self, "budget_s", check_budget(self.budget_s))
        object.__setattr__(self, "options", dict(self.options))
        try:
            json.dumps(self.options, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job options must be JSON values (numbers, strings, booleans, lists): {exc}") from None
        kind = target_kind_of(self.target)
        method = get_method(self.method, kind)
        valid = {f.name for f in dataclasses.fields(method.settings_for(kind))}
        unknown = sorted(set(self.options) - valid)
        if unknown:
            raise ValueError(
                f"method {self.method!r} on a {kind} has no option {unknown[0]!r}; its options are: "
                f"{', '.join(sorted(valid))}"
            )
        if not self.name:
            object.__setattr__(self, "name", f"{self.target}/{self.method}/{self.seed}")

    @property
    def key(self) -> str:
        """A stable key: a hash of target, method, seed, budget and options (16 hex digits)."""
        text = json.dumps(
            {
                "target": self.target,
                "method": self.method,
                "seed": self.seed,
                "budget_s": self.budget_s,
                "options": self.options,
            },
            sort_keys=True,
            allow_nan=False,
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def target_kind_of(target: str) -> str:
    """The kind of target a job string names, without building it.

    ``"peptide"`` for a PDB path, ``"function"`` for ``"name:dim"``,
    ``"cluster"`` otherwise (the names of :func:`openmm_actionmin.systems.named_system`).
    """
    if target.lower().endswith(".pdb"):
        return "peptide"
    head, sep, tail = target.rpartition(":")
    if sep and head and tail.strip().isdigit():
        return "function"
    return "cluster"


def make_jobs(
    targets: Iterable[str],
    methods: Iterable[str],
    seeds: Iterable[int],
    budget_s: Optional[float] = 60.0,
    options: Optional[Mapping[str, Any]] = None,
) -> List[Job]:
    """Every combination of target, method and seed as a :class:`Job` (target-major order).

    Args:
        targets: Target strings.
        methods: Method names.
        seeds: Seeds.
        budget_s: Budget of every job (``None``: bounded by ``options``).
        options: Options of every job.

    Returns:
        The jobs.
    """
    seeds = list(seeds)
    methods = list(methods)
    return [Job(t, m, s, budget_s, dict(options or {})) for t in targets for m in methods for s in seeds]


# ----------------------------------------------------------------- the worker side
def thread_environment(threads: int) -> Dict[str, str]:
    """The environment variables that give native thread pools ``threads`` threads."""
    return {name: str(int(threads)) for name in THREAD_VARIABLES}


@contextlib.contextmanager
def _thread_limits(threads: int) -> Iterator[None]:
    """Torch's and OpenBLAS's threads limited to ``threads`` for the length of a job.

    Pools that size themselves when their library loads (OpenMP) follow
    :func:`thread_environment`, which the ``processes`` executor and a new
    ``LocalCluster`` set before their workers start; NumPy's and SciPy's
    OpenBLAS pools are also limited here, so serial jobs get the same limit.
    """
    from .threads import blas_threads
    from .search.local import torch_threads

    with torch_threads(threads), blas_threads(threads):
        yield


def _init_process(threads: int) -> None:
    """Initializer of the ``processes`` executor's workers: thread pools of ``threads``."""
    os.environ.update(thread_environment(threads))
    import torch

    torch.set_num_threads(int(threads))


def _thread_options(job: Job, threads: int) -> Dict[str, Any]:
    """The job's options, with the thread count of OpenMM and torch where the method takes one."""
    from .registry import METHODS

    options = dict(job.options)
    fields = {f.name for f in dataclasses.fields(METHODS[job.method].settings_for(target_kind_of(job.target)))}
    for name in ("threads", "num_threads"):
        if name in fields and options.get(name) is None:
            options[name] = int(threads)
    return options


def run_job(
    job: Job, checkpoint: Optional[str] = None, checkpoint_interval_s: float = 60.0, threads: int = 1
) -> Dict[str, Any]:
    """Run one job here (in a worker) and return its row.

    Args:
        job: The job.
        checkpoint: Its checkpoint file (``None``: none); an existing one is resumed.
        checkpoint_interval_s: Seconds between checkpoint writes.
        threads: Threads of torch, OpenBLAS and OpenMM for this job.

    Returns:
        The row (see :func:`minimize_many`).
    """
    from .api import minimize

    had_checkpoint = checkpoint is not None and os.path.exists(checkpoint)
    t0 = time.perf_counter()
    with _thread_limits(threads):
        result = minimize(
            job.target,
            job.method,
            seed=job.seed,
            budget_s=job.budget_s,
            progress=False,
            checkpoint=checkpoint,
            checkpoint_interval_s=checkpoint_interval_s,
            **_thread_options(job, threads),
        )
    extra = result.extra if isinstance(result.extra, dict) else {}
    row: Dict[str, Any] = {
        "key": job.key,
        "name": job.name,
        "target": job.target,
        "method": job.method,
        "seed": job.seed,
        "budget_s": job.budget_s,
        "options": job.options,
        "energy": float(result.energy),
        "energy_unit": result.units.energy,
        "force_calls": int(result.force_calls),
        "wall_s": time.perf_counter() - t0,
    }
    for name in EXTRA_FIELDS:
        if name in extra:
            row[name] = extra[name]
    row["resumed"] = bool(extra.get("resumed", had_checkpoint))
    row.update(host=socket.gethostname(), pid=os.getpid(), threads=int(threads), error=None)
    return to_jsonable(row)


def _error_row(job: Job, error: BaseException) -> Dict[str, Any]:
    message = " ".join(f"{type(error).__name__}: {error}".split())
    return {
        "key": job.key,
        "name": job.name,
        "target": job.target,
        "method": job.method,
        "seed": job.seed,
        "budget_s": job.budget_s,
        "options": job.options,
        "error": message,
    }


# --------------------------------------------------------------- the results file
def read_rows(path: os.PathLike) -> List[Dict[str, Any]]:
    """The rows of a results file (JSON Lines); a missing file has none.

    A line that is not a JSON object (the half-written last line of a killed
    writer) is skipped with a warning.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or "key" not in row:
                warnings.warn(f"{path}:{number} is not a result row; it is skipped", stacklevel=2)
                continue
            rows.append(row)
    return rows


class _RowWriter:
    """Appends strict-JSON rows to a JSON Lines file, each flushed and fsync-ed."""

    def __init__(self, path: os.PathLike) -> None:
        self.path = Path(path)
        self.fh: Optional[Any] = None

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "ab")
        if fh.tell() > 0:  # a killed writer may have left half a line: start on a fresh one
            with open(self.path, "rb") as old:
                old.seek(-1, os.SEEK_END)
                if old.read(1) != b"\n":
                    fh.write(b"\n")
        return fh

    def write(self, row: Dict[str, Any]) -> None:
        """Append ``row`` as one line and make it durable (flush, fsync)."""
        line = json.dumps(to_jsonable(row), allow_nan=False) + "\n"
        if self.fh is None:
            self.fh = self._open()
        self.fh.write(line.encode("utf-8"))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        """Close the file (if a row was written)."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None


# ---------------------------------------------------------------------- executors
_Task = Tuple[Job, Optional[str], float, int]
_Done = Callable[[Job, Optional[Dict[str, Any]], Optional[BaseException]], None]


def _run_serial(tasks: Sequence[_Task], done: _Done, retries: int) -> None:
    for task in tasks:
        for attempt in range(retries + 1):
            try:
                row = run_job(*task)
            except Exception as exc:  # noqa: BLE001 - a failed job becomes an error row after its retries
                if attempt == retries:
                    done(task[0], None, exc)
                continue
            done(task[0], row, None)
            break


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for processes started inside (restored after)."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_processes(tasks: Sequence[_Task], done: _Done, retries: int, n_workers: Optional[int], threads: int) -> None:
    workers = n_workers or max(1, (os.cpu_count() or 1) // threads)
    failures: Dict[str, int] = {}
    pending = list(tasks)
    context = multiprocessing.get_context("spawn")
    with _environment(thread_environment(threads)):  # read by the spawned workers before NumPy and torch load
        while pending:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(pending)),
                mp_context=context,
                initializer=_init_process,
                initargs=(threads,),
            ) as pool:
                futures = {pool.submit(run_job, *task): task for task in pending}
                pending = []
                waiting = set(futures)
                while waiting:
                    finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for future in finished:
                        task = futures[future]
                        try:
                            row = future.result()
                        except Exception as exc:  # noqa: BLE001 - a failed job is retried, then becomes an error row
                            key = task[0].key
                            failures[key] = failures.get(key, 0) + 1
                            if failures[key] > retries:
                                done(task[0], None, exc)
                            else:
                                pending.append(task)
                        else:
                            done(task[0], row, None)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "the dask executor needs Dask: pip install openmm_actionmin[dask]  "
            "(or pip install 'dask[distributed]>=2024.1')"
        ) from None
    return distributed


def _connect(scheduler: Any, n_workers: Optional[int], threads: int):
    """A Dask client: to ``scheduler`` (an address or a cluster object) or to a new LocalCluster.

    Returns:
        ``(client, cluster)``; ``cluster`` is the LocalCluster made here (``None`` otherwise).
    """
    distributed = _import_distributed()
    if scheduler is None:
        workers = n_workers or max(1, (os.cpu_count() or 1) // threads)
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=thread_environment(threads),
        )
        return distributed.Client(cluster), cluster
    address = getattr(scheduler, "scheduler_address", scheduler)
    try:
        return distributed.Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


def _run_dask(
    tasks: Sequence[_Task], done: _Done, retries: int, scheduler: Any, n_workers: Optional[int], threads: int
) -> None:
    distributed = _import_distributed()
    client, cluster = _connect(scheduler, n_workers, threads)
    try:
        futures = {}
        for task in tasks:
            future = client.submit(run_job, *task, key=f"actionmin-{task[0].key}", retries=retries, pure=False)
            futures[future.key] = (future, task)
        for future in distributed.as_completed([f for f, _ in futures.values()]):
            task = futures[future.key][1]
            if future.status == "finished":
                done(task[0], future.result(), None)
            else:
                try:
                    exc = future.exception()
                except BaseException as err:  # noqa: BLE001 - a cancelled future reports by raising
                    exc = err
                done(task[0], None, exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def minimize_many(
    jobs: Iterable[Job],
    executor: str = "serial",
    *,
    results: os.PathLike = "runs.jsonl",
    scheduler: Any = None,
    n_workers: Optional[int] = None,
    threads_per_job: int = 1,
    checkpoint_dir: Optional[os.PathLike] = None,
    checkpoint_interval_s: float = 60.0,
    retries: int = 2,
    on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Run many jobs, streaming one row per finished job to a results file.

    Example::

        import openmm_actionmin as am
        jobs = am.make_jobs(["LJ38"], ["basin_hopping"], range(100), budget_s=10)
        rows = am.minimize_many(jobs, "dask", n_workers=8, results="runs.jsonl", checkpoint_dir="ckpt")

    Jobs whose key already has a row in ``results`` are not run again, so
    the same call after an interruption runs only what is left (a row with an
    ``error`` is run again). Duplicate jobs run once.

    A row holds ``key``, ``name``, ``target``, ``method``, ``seed``,
    ``budget_s``, ``options``, ``energy`` (and ``energy_unit``),
    ``force_calls``, ``wall_s`` (of the job in its worker), ``success``,
    ``target_energy``, ``time_to_target_s``, ``force_calls_to_target`` and
    ``stop_reason`` where the method reports them, ``resumed`` (whether it
    continued a checkpoint), ``host``, ``pid`` and ``threads`` of the worker,
    and ``error`` (``None``; a job that failed ``retries + 1`` times gets a row
    with the error and no result).

    Args:
        jobs: The jobs (:class:`Job`; see :func:`make_jobs`).
        executor: ``"serial"``, ``"processes"`` or ``"dask"``.
        results: The JSON Lines file rows are appended to.
        scheduler: For ``"dask"``: a scheduler address (``"tcp://host:8786"``)
            or a cluster object with ``scheduler_address``; ``None``: a new
            ``LocalCluster`` of ``n_workers`` processes, closed at the end.
        n_workers: Worker processes of ``"processes"`` and of a new
            ``LocalCluster`` (``None``: cores // ``threads_per_job``).
        threads_per_job: Threads of torch, OpenBLAS and OpenMM in each job.
        checkpoint_dir: Folder of the jobs' checkpoints (``<key>.ckpt``),
            used by methods that checkpoint; on a cluster it must be shared
            by the workers and this process. A job's checkpoint is deleted
            once its row is written. ``None``: no checkpoints.
        checkpoint_interval_s: Seconds between a job's checkpoint writes.
        retries: Times a job that raised is run again. Dask also reruns a
            job whose worker died (up to its ``allowed-failures``); with
            ``"processes"`` a worker that dies breaks the pool, and every
            unfinished job counts one failure and runs again in a new pool.
        on_row: Called with each new row once it is written (e.g. to print progress).

    Returns:
        One row per job, in the order of ``jobs`` (rows already in the file
        included).

    Raises:
        ValueError: an unknown executor, bad settings, or a scheduler that
            cannot be reached within :data:`SCHEDULER_TIMEOUT_S` seconds.
        ImportError: ``"dask"`` without Dask installed.
    """
    from .registry import METHODS, check_positive

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if isinstance(threads_per_job, bool) or not isinstance(threads_per_job, int) or threads_per_job < 1:
        raise ValueError(f"threads_per_job must be a whole number >= 1, got {threads_per_job!r}")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
        raise ValueError(f"n_workers must be a whole number >= 1, got {n_workers!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
    check_positive(checkpoint_interval_s, "checkpoint_interval_s")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"scheduler= applies to the dask executor, not {executor!r}")
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, Job):
            raise ValueError(
                f"minimize_many runs Job objects (openmm_actionmin.executor.Job), got {type(job).__name__}"
            )
    if executor == "dask":
        _import_distributed()
    ckpt_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    rows: Dict[str, Dict[str, Any]] = {}
    for row in read_rows(results):
        if row.get("error") is None:
            rows[row["key"]] = row
    tasks: List[_Task] = []
    seen = set(rows)
    for job in jobs:
        if job.key in seen:
            continue
        seen.add(job.key)
        ckpt = None
        if ckpt_dir is not None and METHODS[job.method].checkpoints:
            ckpt = str(ckpt_dir / f"{job.key}.ckpt")
        tasks.append((job, ckpt, float(checkpoint_interval_s), threads_per_job))
    failed: Dict[str, Dict[str, Any]] = {}
    if tasks:
        writer = _RowWriter(results)

        def done(job: Job, row: Optional[Dict[str, Any]], error: Optional[BaseException]) -> None:
            if row is None:
                row = _error_row(job, error)
                failed[job.key] = row
            else:
                rows[job.key] = row
            writer.write(row)
            if row.get("error") is None and ckpt_dir is not None:
                Path(ckpt_dir / f"{job.key}.ckpt").unlink(missing_ok=True)
            if on_row is not None:
                on_row(row)

        try:
            if executor == "serial":
                _run_serial(tasks, done, retries)
            elif executor == "processes":
                _run_processes(tasks, done, retries, n_workers, threads_per_job)
            else:
                _run_dask(tasks, done, retries, scheduler, n_workers, threads_per_job)
        finally:
            writer.close()
    return [rows.get(job.key) or failed[job.key] for job in jobs]


def summarize(rows: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per target and method: runs, successes, and the first-encounter force calls and times of the successes.

    Args:
        rows: Rows of :func:`minimize_many` (error rows are counted as failures).

    Returns:
        One dict per (target, method), in first-seen order: ``target``,
        ``method``, ``runs``, ``errors``, ``successes`` (``None`` where no run
        reports success), ``success_rate``, ``mean_force_calls_to_target``,
        ``median_force_calls_to_target``, ``mean_time_to_target_s``,
        ``median_time_to_target_s``, ``best_energy``, ``median_energy``.
    """
    import statistics

    groups: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["target"], row["method"]), []).append(row)
    out = []
    for (target, method), group in groups.items():
        good = [r for r in group if r.get("error") is None]
        judged = [r for r in good if r.get("success") is not None]
        hits = [r for r in judged if r["success"]]
        calls = [r["force_calls_to_target"] for r in hits if r.get("force_calls_to_target") is not None]
        times = [r["time_to_target_s"] for r in hits if r.get("time_to_target_s") is not None]
        energies = [r["energy"] for r in good if r.get("energy") is not None and math.isfinite(r["energy"])]
        out.append(
            {
                "target": target,
                "method": method,
                "runs": len(group),
                "errors": len(group) - len(good),
                "successes": len(hits) if judged else None,
                "success_rate": len(hits) / len(group) if judged else None,
                "mean_force_calls_to_target": statistics.fmean(calls) if calls else None,
                "median_force_calls_to_target": statistics.median(calls) if calls else None,
                "mean_time_to_target_s": statistics.fmean(times) if times else None,
                "median_time_to_target_s": statistics.median(times) if times else None,
                "best_energy": min(energies) if energies else None,
                "median_energy": statistics.median(energies) if energies else None,
            }
        )
    return out
