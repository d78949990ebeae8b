"""The one registry: every method runs on every kind of target it declares, through every door."""

import os
import shlex

import numpy as np
import pytest

import openmm_actionmin as am
from openmm_actionmin import cli, data_path
from openmm_actionmin.registry import DEFAULTS, KINDS, METHOD_NAMES, METHODS, RunConfig, get_method

CLN025 = str(data_path("systems", "pdb", "5awl_cln025.pdb"))

#: One small target per kind, its budget, and the CLI input naming it.
TARGETS = {"cluster": ("LJ13", 2.0), "function": ("alpine1:4", 1.0), "peptide": (CLN025, 4.0)}


def _allowed(budget: float) -> float:
    return budget + max(0.1 * budget, 2.0)


def test_every_method_is_complete_and_every_kind_has_a_default():
    assert set(METHODS) == set(METHOD_NAMES)
    for name, method in METHODS.items():
        assert method.name == name and method.description and method.kinds
        assert set(method.kinds) <= set(KINDS) and set(method.settings) == set(method.kinds)
        assert callable(method.run)
    for kind in KINDS:
        assert kind in METHODS[DEFAULTS[kind]].kinds
    with pytest.raises(ValueError, match="does not run on a function"):
        get_method("openmm", "function")


@pytest.mark.parametrize("name,kind", [(m, k) for m in METHOD_NAMES for k in METHODS[m].kinds])
def test_every_method_runs_on_every_kind_it_declares_through_minimize_and_the_cli(name, kind, tmp_path, capsys):
    target, budget = TARGETS[kind]
    result = am.minimize(target, name, budget_s=budget, seed=1, progress=False)
    assert result.method == name and result.seed == 1
    assert np.isfinite(result.energy)
    assert result.wall_s <= _allowed(budget), f"{name} on a {kind} ran {result.wall_s:.1f} s on a {budget} s budget"
    out = tmp_path / "r.json"
    code = cli.main(
        ["minimize", target, "--method", name, "--budget-s", str(budget), "--seed", "1", "--quiet", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert out.exists() and f"{name} energy" in capsys.readouterr().out


def test_minimize_and_minimize_pdb_are_one_run_for_one_seed():
    from openmm_actionmin.api import minimize_pdb
    from openmm_actionmin.search.action import ActionConfig

    cfg = ActionConfig(max_rounds=2, budget_s=None, warm_start_samples=64, warm_start_batch=64, warm_start_steps=5)
    a = am.minimize(CLN025, "action", seed=3, budget_s=60, progress=False, action_config=cfg, threads=1)
    b = minimize_pdb(CLN025, method="action", seed=3, budget_s=60, action_config=cfg, threads=1)
    assert a.method == b.method == "action"
    # the same training in the same torsion space, round for round ...
    train_a = [row["best_energy"] for row in a.history if row.get("phase") != "polish"]
    train_b = [row["best_energy"] for row in b.history if row.get("phase") != "polish"]
    assert len(train_a) == len(train_b) == 3 and np.allclose(train_a, train_b, rtol=1e-9)
    # ... and the same polished minimum; the OpenMM pool's multi-threaded force sums differ in the
    # last bits, which a minimisation from a 1e7 kJ/mol candidate carries to about 0.1 kJ/mol
    assert a.energy == pytest.approx(b.energy, abs=0.5)
    assert a.extra["ca_rmsd_to_input_A"] == pytest.approx(b.extra["ca_rmsd_to_input_A"], abs=0.05)


def test_every_subcommand_runs_its_documented_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.symlink(data_path("systems"), tmp_path / "systems")
    for name, example in cli.EXAMPLES.items():
        argv = shlex.split(example)[1:]
        assert cli.main(argv) == 0, f"{example}: {capsys.readouterr().err}"
        assert example in cli.build_parser()._subparsers._group_actions[0].choices[name].format_help()
    assert (tmp_path / "lj13.xyz").exists() and (tmp_path / "compare.png").exists()


def test_cli_method_help_lists_every_method(capsys):
    with pytest.raises(SystemExit):
        cli.main(["minimize", "--help"])
    text = capsys.readouterr().out.replace("\n", " ")
    for name in METHOD_NAMES:
        assert name in text


def test_unknown_option_names_the_method_and_lists_its_options():
    with pytest.raises(ValueError, match="'basin_hopping' on a cluster has no option 'n_walker'.*n_walkers"):
        am.minimize("LJ13", "basin_hopping", budget_s=1, progress=False, n_walker=4)
    with pytest.raises(ValueError, match="budget_s"):
        RunConfig(budget_s=0)
