"""Nothing is lost: checkpoints belong to one run, outputs are checked first, budgets are kept."""

import json
import math
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import openmm_actionmin as am
from openmm_actionmin import checkpoints, cli
from openmm_actionmin.checkpoints import CheckpointInUse, CheckpointMismatch, CheckpointWriteWarning
from openmm_actionmin.output import ResultWriteError

BH = dict(progress=False, n_walkers=4, stop_at_target=False)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_of_another_target_is_refused(tmp_path):
    ckpt = str(tmp_path / "fn.pt")
    am.minimize("alpine1:5", "action", budget_s=1, seed=0, progress=False, checkpoint=ckpt)
    with pytest.raises(CheckpointMismatch, match=r"target alpine1:5.*target rastrigin:5"):
        am.minimize("rastrigin:5", "action", budget_s=1, seed=0, progress=False, checkpoint=ckpt)


def test_checkpoint_of_another_seed_is_refused_and_the_same_run_resumes(tmp_path):
    ckpt = str(tmp_path / "bh.pt")
    first = am.minimize("LJ13", "basin_hopping", budget_s=None, seed=0, checkpoint=ckpt, max_steps=2, **BH)
    with pytest.raises(CheckpointMismatch, match="seed 0.*seed 5"):
        am.minimize("LJ13", "basin_hopping", budget_s=None, seed=5, checkpoint=ckpt, max_steps=4, **BH)
    again = am.minimize("LJ13", "basin_hopping", budget_s=None, seed=0, checkpoint=ckpt, max_steps=4, **BH)
    assert again.extra["resumed"] and again.extra["hops"] > first.extra["hops"]
    with pytest.raises(CheckpointMismatch, match="method basin_hopping.*method basin_hopping_lattice"):
        am.minimize("LJ13", "basin_hopping_lattice", budget_s=None, seed=0, checkpoint=ckpt, max_steps=4, **BH)


def test_a_checkpoint_in_use_by_a_live_process_is_refused_and_a_stale_lock_taken_over(tmp_path):
    ckpt = tmp_path / "run.pt"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run.pt.lock").write_text(str(sleeper.pid))
        with pytest.raises(CheckpointInUse, match=f"in use by process {sleeper.pid}"):
            am.minimize("LJ13", "basin_hopping", budget_s=None, checkpoint=str(ckpt), max_steps=1, **BH)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone: its lock is stale
    result = am.minimize("LJ13", "basin_hopping", budget_s=None, checkpoint=str(ckpt), max_steps=1, **BH)
    assert np.isfinite(result.energy) and ckpt.exists()
    assert not (tmp_path / "run.pt.lock").exists()


def test_a_lock_of_another_host_is_refused_while_fresh_and_taken_over_when_stale(tmp_path):
    import os
    import time

    from openmm_actionmin.checkpoints import CheckpointLock

    ckpt = tmp_path / "run.pt"
    lock = tmp_path / "run.pt.lock"
    lock.write_text("12345 node-that-is-not-this-one")
    with pytest.raises(CheckpointInUse, match="process 12345 on host node-that-is-not-this-one"):
        am.minimize("LJ13", "basin_hopping", budget_s=None, checkpoint=str(ckpt), max_steps=1, **BH)
    old = time.time() - 2 * 900
    os.utime(lock, (old, old))  # its holder stopped refreshing it
    with CheckpointLock(ckpt) as held:
        assert held.held and lock.read_text().split()[0] == str(os.getpid())


def test_a_failing_checkpoint_write_is_a_warning_and_the_run_finishes(tmp_path, monkeypatch):
    def disk_full(obj, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "atomic_torch_save", disk_full)
    with pytest.warns(CheckpointWriteWarning, match="No space left on device"):
        result = am.minimize(
            "LJ13",
            "basin_hopping",
            budget_s=None,
            checkpoint=str(tmp_path / "c.pt"),
            max_steps=2,
            checkpoint_interval_s=1e-3,
            **BH,
        )
    assert np.isfinite(result.energy)


def test_checkpoint_interval_is_configurable_on_the_cli():
    args = cli.build_parser().parse_args(["cluster", "13", "--checkpoint", "c.pt", "--checkpoint-interval-s", "5"])
    assert args.checkpoint == "c.pt" and args.checkpoint_interval_s == 5.0


# ------------------------------------------------------------------ outputs
def test_output_path_is_checked_before_the_search(tmp_path):
    for out, message in (
        (tmp_path / "r.docx", "unknown extension"),
        (tmp_path / "r.pdb", "has no atoms"),
        (tmp_path / "missing" / "r.json", "does not exist"),
        (tmp_path, "is a folder"),
    ):
        t0 = time.perf_counter()
        with pytest.raises((ValueError, OSError), match=message):
            am.minimize("alpine1:5", "adam", budget_s=30, progress=False, out=str(out))
        assert time.perf_counter() - t0 < 10, "the search ran before the output path was checked"


def test_a_failed_result_write_goes_to_a_fallback_file_and_names_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = "/proc/actionmin-result.json"  # a folder that exists but takes no new files, even for root
    with pytest.raises(ResultWriteError) as info:
        am.minimize("alpine1:3", "adam", budget_s=1, progress=False, out=target)
    message = str(info.value)
    assert target in message and str(info.value.fallback) in message
    saved = json.loads(info.value.fallback.read_text())
    assert saved["method"] == "adam" and len(saved["positions"]) == 3
    code = cli.main(["minimize", "alpine1:3", "--method", "adam", "--budget-s", "1", "--quiet", "--out", target])
    assert code == 1


def test_outputs_and_checkpoints_respect_the_umask_and_json_is_strict(tmp_path):
    old = os.umask(0o022)
    try:
        result = am.minimize(
            "LJ13",
            "basin_hopping",
            budget_s=None,
            checkpoint=str(tmp_path / "c.pt"),
            max_steps=1,
            out=str(tmp_path / "r.json"),
            **BH,
        )
    finally:
        os.umask(old)
    for name in ("c.pt", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    result.extra["not_a_number"] = math.nan
    result.save(tmp_path / "nan.json")

    def refuse(token):
        raise AssertionError(f"bare {token} in JSON")

    data = json.loads((tmp_path / "nan.json").read_text(), parse_constant=refuse)
    assert data["extra"]["not_a_number"] is None


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("budget", [0, -5, math.nan, math.inf, "soon"])
def test_invalid_budgets_are_refused_naming_the_option(budget):
    with pytest.raises(ValueError, match="budget_s must be a positive"):
        am.minimize("LJ13", budget_s=budget, progress=False)


@pytest.mark.parametrize("seed", [-1, 1.7, 2**40, "one"])
def test_invalid_seeds_are_refused_naming_the_option(seed):
    with pytest.raises(ValueError, match="seed must be a whole number"):
        am.minimize("LJ13", seed=seed, budget_s=1, progress=False)


@pytest.mark.parametrize(
    "argv,option",
    [
        (["minimize", "LJ13", "--budget-s", "0"], "--budget-s"),
        (["minimize", "LJ13", "--budget-s", "nan"], "--budget-s"),
        (["cluster", "13", "--budget-s", "-5"], "--budget-s"),
        (["minimize", "LJ13", "--seed", "-1"], "--seed"),
        (["minimize", "LJ13", "--seed", "99999999999"], "--seed"),
        (["minimize", "LJ13", "--checkpoint-interval-s", "0"], "--checkpoint-interval-s"),
        (["minimize", "LJ100000"], "choose a smaller cluster"),
        (["minimize", "LJ13", "--out", "x.docx"], "--out"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(argv, option, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert option in err and err.count("\n") == 1 and "Traceback" not in err


# ------------------------------------------------------------------ budgets
@pytest.fixture(scope="module")
def protein_pdb(tmp_path_factory):
    """A 2,000-atom protein PDB: an extended 130-residue chain built from sequence, hydrogens added on preparation."""
    from openmm_actionmin.systems.peptides import build_heavy_atom_pdb

    path = tmp_path_factory.mktemp("protein") / "chain130.pdb"
    path.write_text(build_heavy_atom_pdb("ACDEFGHIKLMNPQRSTVWY" * 6 + "GSGSGSGSGS"))
    return str(path)


@pytest.mark.parametrize("method", ["basin_hopping", "openmm", "anneal", "action", "random_only", "hybrid"])
def test_every_peptide_method_keeps_its_budget_on_a_2000_atom_pdb(protein_pdb, method):
    budget = 15.0
    t0 = time.perf_counter()
    result = am.minimize(protein_pdb, method, budget_s=budget, seed=0, progress=False)
    wall = time.perf_counter() - t0
    assert result.topology.getNumAtoms() >= 2000
    assert wall <= budget + max(0.1 * budget, 2.0), f"{method} took {wall:.1f} s on a {budget} s budget"
    assert result.energy <= result.extra["start_energy"]


def test_lattice_search_keeps_a_short_budget_on_a_large_cluster():
    t0 = time.perf_counter()
    result = am.minimize("LJ1000", budget_s=2, progress=False)
    assert time.perf_counter() - t0 <= 2 + 2.0
    assert np.isfinite(result.energy)


def test_the_action_trainer_checkpoints_on_the_interval_and_resumes(tmp_path):
    ckpt = tmp_path / "action.ckpt"
    first = am.minimize(
        "alpine1:5",
        "action",
        budget_s=None,
        seed=0,
        progress=False,
        checkpoint=str(ckpt),
        checkpoint_interval_s=1e-3,
        max_rounds=3,
    )
    state = checkpoints.load(ckpt, None)
    assert state["round"] == 3
    again = am.minimize(
        "alpine1:5",
        "action",
        budget_s=None,
        seed=0,
        progress=False,
        checkpoint=str(ckpt),
        checkpoint_interval_s=1e-3,
        max_rounds=5,
    )
    assert again.extra["rounds"] == 5 and len(again.history) == len(first.history) + 2
