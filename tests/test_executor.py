"""Tests of minimize_many: serial, process-pool and Dask executors on small LJ13 jobs.

The Dask tests use a real LocalCluster of two worker processes (one per core),
shared by the module.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import openmm_actionmin as am
from openmm_actionmin.executor import Job, make_jobs, minimize_many, read_rows, summarize

distributed = pytest.importorskip("distributed")

#: Round-bounded LJ13 jobs: they stop at the GM or after 5 hops per walker, the same on any worker.
QUICK = {"max_steps": 5, "n_walkers": 4}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _quick_jobs(seeds=range(4)):
    return make_jobs(["LJ13"], ["basin_hopping"], seeds, budget_s=None, options=QUICK)


def test_job_key_is_stable_and_checked():
    a = Job("LJ13", "basin_hopping", 3, 5, {"max_steps": 5})
    b = Job("LJ13", "basin_hopping", 3, 5.0, {"max_steps": 5}, name="other label")
    assert a.key == b.key and len(a.key) == 16
    assert a.key != Job("LJ13", "basin_hopping", 4, 5, {"max_steps": 5}).key
    assert a.key != Job("LJ13", "basin_hopping", 3, 5, {"max_steps": 6}).key
    assert a.name == "LJ13/basin_hopping/3"
    with pytest.raises(ValueError, match="no option 'bogus'"):
        Job("LJ13", "basin_hopping", 0, 5, {"bogus": 1})
    with pytest.raises(ValueError, match="does not run on a function"):
        Job("alpine1:5", "basin_hopping")
    with pytest.raises(ValueError, match="seed"):
        Job("LJ13", "basin_hopping", -1)
    with pytest.raises(ValueError, match="JSON"):
        Job("LJ13", "basin_hopping", 0, 5, {"temperature": float("nan")})
    with pytest.raises(ValueError, match="unknown executor"):
        minimize_many([a], "threads")


def test_dask_and_processes_rows_equal_serial_rows_and_rerun_skips(tmp_path, cluster):
    jobs = _quick_jobs()
    serial = minimize_many(jobs, "serial", results=tmp_path / "serial.jsonl")
    dask_rows = minimize_many(jobs, "dask", scheduler=cluster.scheduler_address, results=tmp_path / "dask.jsonl")
    procs = minimize_many(jobs, "processes", n_workers=2, results=tmp_path / "procs.jsonl")
    for rows in (dask_rows, procs):
        assert [r["key"] for r in rows] == [j.key for j in jobs]
        assert [(r["energy"], r["force_calls"], r["success"]) for r in rows] == [
            (r["energy"], r["force_calls"], r["success"]) for r in serial
        ]
    assert len({r["pid"] for r in dask_rows}) == 2  # both workers ran jobs
    assert {r["pid"] for r in serial} == {os.getpid()}
    lines = (tmp_path / "dask.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["error"] is None for line in lines)
    row = dask_rows[0]
    for field in (
        "key",
        "target",
        "method",
        "seed",
        "budget_s",
        "energy",
        "force_calls",
        "wall_s",
        "success",
        "target_energy",
        "time_to_target_s",
        "force_calls_to_target",
        "host",
        "pid",
        "resumed",
    ):
        assert field in row
    # a rerun runs nothing (it does not even reach for a scheduler) and returns the rows in the file
    again = minimize_many(jobs + jobs[:1], "dask", scheduler="tcp://127.0.0.1:1", results=tmp_path / "dask.jsonl")
    assert again == dask_rows + dask_rows[:1]
    assert (tmp_path / "dask.jsonl").read_text().splitlines() == lines
    table = summarize(again)
    assert table[0]["runs"] == 5 and table[0]["success_rate"] == 1.0
    assert table[0]["median_force_calls_to_target"] is not None


def test_killed_worker_job_resumes_from_its_checkpoint(tmp_path, cluster):
    job = Job("LJ13", "basin_hopping", 7, None, {"max_steps": 100, "n_walkers": 4, "stop_at_target": False})
    ckpt = tmp_path / "ckpt" / f"{job.key}.ckpt"
    killed = []

    def kill_when_checkpointed():
        deadline = time.time() + 60
        while time.time() < deadline:
            lock = Path(f"{ckpt}.lock")
            if ckpt.exists() and lock.exists():
                try:
                    pid = int(lock.read_text().split()[0])
                except (OSError, ValueError):
                    continue
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_checkpointed, daemon=True)
    killer.start()
    (row,) = minimize_many(
        [job],
        "dask",
        scheduler=cluster.scheduler_address,
        results=tmp_path / "runs.jsonl",
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_interval_s=0.5,
    )
    killer.join(5)
    assert killed, "the job ended before its first checkpoint"
    assert row["error"] is None and row["resumed"] is True
    assert row["pid"] != killed[0]
    assert row["stop_reason"] == "max_steps"
    assert not ckpt.exists()  # deleted once the row is written
    assert read_rows(tmp_path / "runs.jsonl") == [row]


def test_unreachable_scheduler_is_one_line_error(tmp_path):
    address = "tcp://127.0.0.1:1"
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1") as info:
        minimize_many(_quick_jobs([0]), "dask", scheduler=address, results=tmp_path / "runs.jsonl")
    assert time.perf_counter() - t0 < 30
    assert "\n" not in str(info.value)
    assert not (tmp_path / "runs.jsonl").exists()


_INTERRUPTED = textwrap.dedent("""
    import sys
    from openmm_actionmin.executor import make_jobs, minimize_many
    if __name__ == "__main__":
        jobs = make_jobs(["LJ13"], ["basin_hopping"], range(6), budget_s=None,
                         options={"max_steps": 15, "n_walkers": 4, "stop_at_target": False})
        minimize_many(jobs, "serial", results=sys.argv[1], checkpoint_dir=sys.argv[2], checkpoint_interval_s=0.2)
""")


def test_rows_survive_a_killed_client_and_a_rerun_finishes_the_rest(tmp_path):
    results = tmp_path / "runs.jsonl"
    script = tmp_path / "client.py"
    script.write_text(_INTERRUPTED)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(results), str(tmp_path / "ckpt")], env=env)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines = results.read_text().splitlines()
    assert 2 <= len(lines) < 6, "the client finished before it was killed"
    first = [json.loads(line) for line in lines]  # every line is a whole strict-JSON row
    jobs = make_jobs(
        ["LJ13"],
        ["basin_hopping"],
        range(6),
        budget_s=None,
        options={"max_steps": 15, "n_walkers": 4, "stop_at_target": False},
    )
    rows = minimize_many(jobs, "serial", results=results, checkpoint_dir=tmp_path / "ckpt", checkpoint_interval_s=0.2)
    assert [r["key"] for r in rows] == [j.key for j in jobs]
    assert all(r["error"] is None for r in rows)
    stored = read_rows(results)
    assert len(stored) == 6 and len({r["key"] for r in stored}) == 6
    assert stored[: len(first)] == first
    assert not list((tmp_path / "ckpt").glob("*.ckpt"))


def test_failed_job_gets_an_error_row_and_runs_again(tmp_path):
    job = Job("LJ13", "basin_hopping", 0, None, {"max_steps": 5, "n_walkers": 0})
    (row,) = minimize_many([job], "serial", results=tmp_path / "runs.jsonl", retries=0)
    assert row["error"] and "energy" not in row
    (again,) = minimize_many([job], "serial", results=tmp_path / "runs.jsonl", retries=0)
    assert again["error"]
    assert len(read_rows(tmp_path / "runs.jsonl")) == 2


def test_package_exports():
    assert am.minimize_many is minimize_many and am.Job is Job and am.make_jobs is make_jobs


def test_bench_many_help_example_runs_and_resumes(capsys, tmp_path, monkeypatch):
    from openmm_actionmin.benchmarks.many import parse_options, parse_seeds
    from openmm_actionmin.cli import main

    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("5-7") == [5, 6, 7] and parse_seeds("0,4-5,4") == [0, 4, 5]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("7-5")
    with pytest.raises(ValueError, match="for seed 0 alone write 0-0"):
        parse_seeds("0")
    assert parse_options(["max_steps=5", "quench_method=fire", "target_energy=null"]) == {
        "max_steps": 5,
        "quench_method": "fire",
        "target_energy": None,
    }
    with pytest.raises(SystemExit) as stop:
        main(["bench", "many", "--help"])
    assert stop.value.code == 0
    example = capsys.readouterr().out.split("example:\n", 1)[1].strip().split()
    assert example[:3] == ["actionmin", "bench", "many"]
    monkeypatch.chdir(tmp_path)
    assert main(example[1:]) == 0
    assert "LJ13         basin_hopping              4      4/4" in capsys.readouterr().out
    assert main(example[1:]) == 0
    assert "4 jobs, 4 already in runs.jsonl, 0 to run" in capsys.readouterr().out
    assert len(read_rows(tmp_path / "runs.jsonl")) == 4
    assert (
        main(
            [
                "bench",
                "many",
                "--targets",
                "LJ13",
                "--methods",
                "basin_hopping",
                "--executor",
                "dask",
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--results",
                "other.jsonl",
            ]
        )
        == 2
    )
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
