"""Every example script runs with a tiny budget and produces what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CASES = {
    "minimize_pdb.py": (["--method", "openmm", "--budget-s", "5", "--out", "best.pdb"], "best.pdb"),
    "lj_cluster.py": (["13", "--budget-s", "5", "--out", "lj.xyz"], "lj.xyz"),
    "ase_optimizer.py": (
        ["--global-steps", "1", "--hops-per-step", "3", "--action-budget-s", "2", "--trajectory", "lj13.traj"],
        "lj13.traj",
    ),
    "compare_openmm.py": (["--budget-s", "4", "--png", "compare.png"], "compare.png"),
    "synthetic_small.py": (["--dims", "4", "--budget-s", "3", "--json", "small.json"], "small.json"),
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    args, produced = CASES[script]
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / produced).stat().st_size > 0
