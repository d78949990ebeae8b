"""ActionTrainer and the Armijo descent, on real PLNets and real synthetic oracles."""

import json
import math

import pytest
import torch

from openmm_actionmin.models.plnet import PLNet, PLNetConfig
from openmm_actionmin.oracles.synthetic import SyntheticOracle, random_shift
from openmm_actionmin.search.action import ActionConfig, ActionTrainer, write_history
from openmm_actionmin.search.descent import DescentConfig, descend
from openmm_actionmin.systems.base import System
from trainer_helpers import small_config

DIM = 5


def shifted_system(name: str = "griewank", dim: int = DIM, seed: int = 0) -> System:
    oracle = SyntheticOracle(name, dim, shift=random_shift(name, dim, torch.Generator().manual_seed(seed)))
    return System(
        name=f"{name}{dim}",
        oracle=oracle,
        space=oracle.space(),
        reference_energy=oracle.minimum_value,
        reference_positions=oracle.minimum_location,
    )


def comparable(history):
    """History rows without wall-clock times (NaN made comparable)."""
    fix = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return [{k: fix(v) for k, v in row.items() if k != "wall_s"} for row in history]


def test_descent_reaches_the_model_minimiser():
    torch.manual_seed(0)
    model = PLNet(PLNetConfig(dim=DIM, hidden=16, seed=1))
    x_star = model.minimizer()
    starts = 2.0 * torch.rand(6, DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) - 1.0
    with model.frozen():
        path = descend(model, starts, DescentConfig(max_steps=2000, eps=1e-4))
    assert path.converged
    assert float((path.final - x_star).norm(dim=1).max()) < 1e-3
    # every visited point is kept, starts first; values decrease along each path
    assert torch.equal(path.points[:6], starts)
    assert path.points.shape[0] > 6 * 5
    f0 = model(starts).detach()
    assert bool((path.final_values < f0).all())


def test_descent_validates_its_input():
    model = PLNet(PLNetConfig(dim=DIM, hidden=8, seed=0))
    with pytest.raises(ValueError, match=r"starts of shape \[B, d\]"):
        descend(model, torch.zeros(DIM, dtype=torch.float64))
    with pytest.raises(ValueError, match="shrink"):
        DescentConfig(shrink=1.5)


def test_trainer_gets_closer_and_best_never_worsens():
    system = shifted_system()
    result = ActionTrainer(system, small_config(max_rounds=8)).run()
    history = result.history
    assert [row["round"] for row in history] == list(range(9))  # round 0 = warm start
    # closer than the untrained model's minimiser (its start), and an energy below a random point's
    assert history[-1]["best_distance"] < 0.5 * result.extra["initial_candidate_distance"]
    start_energy = float(system.oracle.energy(system.space.sample(64, torch.Generator().manual_seed(9))).median())
    assert result.energy < start_energy
    # the best candidate never gets worse and is the best candidate seen
    best = [row["best_energy"] for row in history]
    assert all(b1 <= b0 for b0, b1 in zip(best, best[1:]))
    assert best[-1] == min(row["candidate_energy"] for row in history)
    # trajectories were actually run and fed to the loss
    assert all(row["path_points"] > 0 and math.isfinite(row["trajectory_loss"]) for row in history[1:])
    # the returned point is the best candidate and its energy is the true raw energy there
    e = float(system.oracle.energy(torch.as_tensor(result.positions)[None], transform=None)[0])
    assert e == pytest.approx(result.energy, rel=1e-12, abs=1e-12)
    assert result.force_calls == history[-1]["force_calls"] > 0
    assert result.extra["lowest_seen_energy"] <= result.energy


def test_same_seed_same_history_other_seed_differs():
    system = shifted_system()
    a = ActionTrainer(system, small_config(max_rounds=3)).run()
    b = ActionTrainer(system, small_config(max_rounds=3)).run()
    c = ActionTrainer(system, small_config(max_rounds=3, seed=4)).run()
    assert comparable(a.history) == comparable(b.history)
    assert (a.positions == b.positions).all()
    assert comparable(a.history) != comparable(c.history)


class Killed(Exception):
    pass


def kill_then_resume(system, ckpt, kill_round: int, **cfg):
    """Run with a checkpoint, kill the run at ``kill_round``, then resume it to the end."""

    def kill(row):
        if row["round"] == kill_round:
            raise Killed

    with pytest.raises(Killed):
        ActionTrainer(system, small_config(checkpoint_path=str(ckpt), **cfg)).run(on_round=kill)
    assert ckpt.exists()
    killed_state = torch.load(ckpt, weights_only=False)["state"]  # the trainer's state under the run's identity header
    return killed_state, ActionTrainer(system, small_config(checkpoint_path=str(ckpt), **cfg)).run()


def test_checkpoint_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    system = shifted_system("alpine1")
    cfg = dict(max_rounds=7, checkpoint_every=2, grad_match_weight=0.5)
    full = ActionTrainer(system, small_config(**cfg)).run()

    ckpt = tmp_path / "run.pt"
    killed_state, resumed = kill_then_resume(system, ckpt, 5, **cfg)
    assert killed_state["round"] == 4  # last checkpoint before the kill
    assert comparable(resumed.history) == comparable(full.history)
    assert (resumed.positions == full.positions).all()
    assert resumed.energy == full.energy
    assert resumed.force_calls == full.force_calls

    # a checkpoint of another run is refused with a message that says what to do
    with pytest.raises(ValueError, match="belongs to another run.*seed 3.*Delete the file"):
        ActionTrainer(system, small_config(checkpoint_path=str(ckpt), seed=5, **cfg)).run()


def test_history_written_as_json_and_csv(tmp_path):
    system = shifted_system()
    result = ActionTrainer(system, small_config(max_rounds=2, grad_match_weight=0.0, fresh_weight=0.0)).run()
    assert all(math.isnan(row["regression_loss"]) for row in result.history[1:])
    rows = json.loads(write_history(result.history, tmp_path / "h.json").read_text())
    assert comparable(rows) == comparable(result.history)
    text = write_history(result.history, tmp_path / "h.csv").read_text().splitlines()
    assert text[0].startswith("round,wall_s,force_calls,candidate_energy") and len(text) == 4
    with pytest.raises(ValueError, match=r"unknown extension '\.txt'"):
        write_history(result.history, tmp_path / "h.txt")
    result.plot(tmp_path / "h.png", keys=["candidate_energy", "best_distance"])
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_budget_stops_the_run():
    system = shifted_system()
    result = ActionTrainer(system, small_config(max_rounds=None, budget_s=1.5)).run()
    assert result.wall_s < 1.5 + 5.0
    assert result.extra["rounds"] >= 1


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="needs budget_s or max_rounds"):
        ActionConfig(budget_s=None, max_rounds=None)
    with pytest.raises(ValueError, match="all 0; nothing to train"):
        ActionConfig(action_weight=0, grad_match_weight=0, fresh_weight=0)
    system = shifted_system()
    bad = small_config(model=PLNetConfig(dim=DIM + 1, hidden=8))
    with pytest.raises(ValueError, match=rf"model.dim is {DIM + 1}.*has {DIM} variables"):
        ActionTrainer(system, bad).run()


def test_polish_lowers_candidate_energies_and_is_counted():
    system = shifted_system("alpine1")
    plain = ActionTrainer(system, small_config(max_rounds=2)).run()
    polished = ActionTrainer(system, small_config(max_rounds=2, polish_steps=3, polish_lr=0.01)).run()
    for a, b in zip(plain.history, polished.history):
        assert b["candidate_energy"] <= a["candidate_energy"]
        assert b["regression_loss"] == a["regression_loss"]  # polish does not change training
    # each polish step costs one gradient and one energy evaluation
    assert [b["force_calls"] - a["force_calls"] for a, b in zip(plain.history, polished.history)] == [6, 12, 18]
    assert polished.energy <= plain.energy


def test_lbfgs_polish_keeps_quenched_cluster_candidates():
    from openmm_actionmin.systems.clusters import lj_cluster

    system = lj_cluster(7)
    cfg = small_config(max_rounds=2, polish_method="lbfgs", polish_steps=2000, polish_fmax=1e-4)
    trainer = ActionTrainer(system, cfg)
    res = trainer.run()
    plain = ActionTrainer(system, small_config(max_rounds=2)).run()
    for a, b in zip(plain.history, res.history):
        assert b["candidate_energy"] < a["candidate_energy"]  # a random LJ7 point is far above any minimum
    x = torch.as_tensor(res.positions).reshape(1, 7, 3)
    energy, forces = system.oracle.energy_and_forces(x, transform=None)
    assert float(forces.norm(dim=-1).max()) < 1e-3  # the kept structure is a quenched minimum
    assert res.energy == pytest.approx(float(energy[0]), abs=1e-9)
    assert res.energy <= -12.0  # LJ7 minima lie between -16.5 and about -12.5
    with pytest.raises(ValueError, match="polish_method must be 'adam' or 'lbfgs'"):
        ActionConfig(polish_method="bfgs")


def test_trust_region_samples_inside_region_shrinks_and_resumes(tmp_path):
    system = shifted_system("alpine1")
    cfg = dict(max_rounds=12, region="trust", region_patience=1, region_shrink=0.5, region_min=0.1, checkpoint_every=3)
    trainer = ActionTrainer(system, small_config(**cfg))
    full = trainer.run()
    radii = [row["region_radius"] for row in full.history]
    # the radius starts at the whole box, never grows, shrinks on stalls and stops at region_min
    assert radii[0] == 1.0
    assert all(r1 <= r0 for r0, r1 in zip(radii, radii[1:]))
    assert radii[-1] < 1.0 and min(radii) >= 0.1
    # fresh samples lie in the box, inside the cube around the best candidate
    z = trainer._sample(500)
    centre = trainer.best["z"].to(z.dtype)
    half = trainer.half.to(z.dtype)
    assert bool(((z - centre).abs() <= trainer.region_radius * half + 1e-12).all())
    lower, upper = system.space.lower.to(z.dtype), system.space.upper.to(z.dtype)
    assert bool(((z >= lower) & (z <= upper)).all())
    # box sampling (the default) is unchanged: a plain run never reports a smaller radius
    plain = ActionTrainer(system, small_config(max_rounds=3)).run()
    assert all(row["region_radius"] == 1.0 for row in plain.history)
    # the trust region is part of the checkpoint: a killed and resumed run ends where the full run ends
    killed_state, resumed = kill_then_resume(system, tmp_path / "trust.pt", 7, **cfg)
    # the checkpoint holds the trust region of its round, as the uninterrupted run had it
    saved_round = killed_state["round"]
    assert killed_state["region"]["radius"] == full.history[saved_round]["region_radius"]
    assert killed_state["region"]["center"] is not None
    assert comparable(resumed.history) == comparable(full.history)
    with pytest.raises(ValueError, match="region must be 'box' or 'trust'"):
        small_config(region="ball")


class _RecordingTrainer(ActionTrainer):
    """Keeps the raw energies of the first oracle batch (the warm-start samples)."""

    warm_raw = None

    def _raw_energy(self, z):
        energy = super()._raw_energy(z)
        if self.warm_raw is None and z.shape[0] > 1:
            self.warm_raw = energy.clone()
        return energy


def test_offset_init_data_starts_c_at_the_lowest_normalised_warm_start_energy():
    system = shifted_system("alpine1")
    zero = ActionTrainer(system, small_config(max_rounds=0, warm_start_steps=0))
    zero.run()
    assert float(zero.model.c.detach()) == 0.0
    trainer = _RecordingTrainer(system, small_config(max_rounds=0, warm_start_steps=0, offset_init="data"))
    trainer.run()
    expected = float(trainer._normalise(trainer.warm_raw).min())
    assert expected < -1.0  # the lowest sample lies well below the mean, so the default c = 0 is far off
    assert float(trainer.model.c.detach()) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="offset_init must be 'zero' or 'data'"):
        small_config(offset_init="min")


def test_offset_lr_gives_c_its_own_group_and_resumes(tmp_path):
    system = shifted_system("alpine1")
    shared = ActionTrainer(system, small_config(max_rounds=0, warm_start_steps=0))
    shared.run()
    assert len(shared.optimizer.param_groups) == 1
    cfg = dict(max_rounds=5, checkpoint_every=2, offset_lr=0.2, offset_init="data")
    trainer = ActionTrainer(system, small_config(**cfg))
    full = trainer.run()
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == 0.2 and groups[0]["lr"] == 1e-2
    assert len(groups[1]["params"]) == 1 and groups[1]["params"][0] is trainer.model.c
    assert all(p is not trainer.model.c for p in groups[0]["params"])
    n_params = sum(1 for _ in trainer.model.parameters())
    assert len(groups[0]["params"]) == n_params - 1

    ckpt = tmp_path / "run.pt"
    _, resumed = kill_then_resume(system, ckpt, 3, **cfg)
    assert comparable(resumed.history) == comparable(full.history)
    assert resumed.energy == full.energy
    with pytest.raises(ValueError, match="offset_lr must be positive"):
        small_config(offset_lr=0.0)


def test_placement_lr_and_learned_growth_model(tmp_path):
    """The placement parameters get their own rate; the learned head is built, trained and resumed."""
    system = shifted_system("alpine1")
    cfg = dict(
        max_rounds=5,
        checkpoint_every=2,
        placement_lr=0.05,
        model_growth="learned",
        model_learn_bounds=False,
        model_mu=0.9,
        model_nu=1.1,
    )
    trainer = ActionTrainer(system, small_config(**cfg))
    full = trainer.run()
    assert trainer.model.config.growth == "learned" and not trainer.model.config.learn_bounds
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == 0.05
    placed = {id(p) for p in groups[1]["params"]}
    named = dict(trainer.model.named_parameters())
    assert placed == {id(named[n]) for n in ActionTrainer.PLACEMENT_PARAMETERS}
    assert trainer.model.growth_exponent != 2.0  # the head's exponent was trained
    assert trainer.model.mu == pytest.approx(0.9) and trainer.model.nu == pytest.approx(1.1)  # fixed bounds
    ckpt = tmp_path / "run.pt"
    _, resumed = kill_then_resume(system, ckpt, 3, **cfg)
    assert comparable(resumed.history) == comparable(full.history)
    with pytest.raises(ValueError, match="placement_lr must be positive"):
        small_config(placement_lr=-1.0)
    with pytest.raises(ValueError, match="model_growth"):
        small_config(model_growth="cubic")


def test_trust_region_patience_scales_with_dimension():
    assert ActionTrainer(shifted_system("alpine1", dim=5), small_config()).region_patience == 5
    assert ActionTrainer(shifted_system("alpine1", dim=400), small_config()).region_patience == 20
    assert ActionTrainer(shifted_system("alpine1", dim=400), small_config(region_patience=7)).region_patience == 7
    with pytest.raises(ValueError, match="region_patience"):
        small_config(region_patience=0)


def test_select_smoothing_compares_candidates_by_the_smoothed_energy(tmp_path):
    system = shifted_system("alpine1")
    cfg = dict(max_rounds=8, select_smoothing=0.05, select_samples=16, checkpoint_every=3)
    trainer = ActionTrainer(system, small_config(**cfg))
    full = trainer.run()
    scores = [row["candidate_score"] for row in full.history]
    energies = [row["candidate_energy"] for row in full.history]
    assert all(s != e for s, e in zip(scores, energies))  # the score is not the candidate's own energy
    # the best candidate is the one with the lowest score so far, and the result reports its raw energy
    for i, row in enumerate(full.history):
        j = min(range(i + 1), key=lambda k: scores[k])
        assert row["best_round"] == full.history[j]["round"]
        assert row["best_energy"] == energies[j]
    assert full.energy == energies[min(range(len(scores)), key=lambda k: scores[k])]
    # each round pays for its perturbations: 16 more force calls per round than the plain run
    plain = ActionTrainer(system, small_config(max_rounds=8)).run()
    extra = [a["force_calls"] - b["force_calls"] for a, b in zip(full.history, plain.history)]
    assert extra == [16 * (i + 1) for i in range(len(extra))]
    # the perturbations are the score's own: the plain run's histories are unchanged
    assert all(row["candidate_score"] == row["candidate_energy"] for row in plain.history)
    _, resumed = kill_then_resume(system, tmp_path / "smooth.pt", 4, **cfg)
    assert comparable(resumed.history) == comparable(full.history)
    with pytest.raises(ValueError, match="select_smoothing"):
        small_config(select_smoothing=-0.1)


def test_translation_rate_follows_the_trust_region_and_resumes(tmp_path):
    """The minimiser's translation gets its own group whose rate is placement_lr times radius ** power."""
    system = shifted_system("alpine1")
    cfg = dict(
        max_rounds=8,
        region="trust",
        region_patience=1,
        region_shrink=0.5,
        region_min=0.1,
        checkpoint_every=3,
        placement_lr=0.05,
        model_growth="learned",
        model_learn_bounds=False,
        translation_region_power=0.5,
    )
    trainer = ActionTrainer(system, small_config(**cfg))
    full = trainer.run()
    groups = trainer.optimizer.param_groups
    translation = [g for g in groups if g.get("name") == "translation"]
    assert len(translation) == 1 and len(groups) == 3
    named = dict(trainer.model.named_parameters())
    assert [id(p) for p in translation[0]["params"]] == [id(named[ActionTrainer.TRANSLATION_PARAMETER])]
    assert trainer.region_radius < 1.0
    assert translation[0]["lr"] == pytest.approx(0.05 * trainer.region_radius**0.5)
    assert groups[1]["lr"] == 0.05  # the other placement parameters keep their rate
    # the rate is part of the optimizer state: a killed and resumed run ends where the full run ends
    _, resumed = kill_then_resume(system, tmp_path / "follow.pt", 4, **cfg)
    assert comparable(resumed.history) == comparable(full.history)
    # off by default: no translation group
    plain = ActionTrainer(system, small_config(**{**cfg, "translation_region_power": 0.0, "max_rounds": 1}))
    plain.run()
    assert all(g.get("name") != "translation" for g in plain.optimizer.param_groups)
    with pytest.raises(ValueError, match="translation_region_power"):
        small_config(translation_region_power=-1.0)


def test_function_bowl_builds_qr_layers_and_the_plain_default_cayley_layers():
    """BOWL_MODEL's ``model_semi_orthogonal="qr"`` reaches every monotone layer; clusters keep Cayley."""
    from openmm_actionmin.models.plnet import MonotoneLayer
    from openmm_actionmin.search.action_config import BOWL_MODEL

    def layer_kinds(**model) -> list:
        trainer = ActionTrainer(shifted_system("alpine1"), small_config(max_rounds=0, warm_start_steps=0, **model))
        trainer.run()
        return [m.semi_orthogonal for m in trainer.model.modules() if isinstance(m, MonotoneLayer)]

    bowl, plain = layer_kinds(**BOWL_MODEL), layer_kinds()
    assert bowl and set(bowl) == {"qr"}
    assert plain and set(plain) == {"cayley"}


def test_region_penalty_clips_the_minimiser_to_the_trust_region_not_only_the_box():
    """With ``region_penalty`` the penalty point is the minimiser clipped to the trust region."""
    cfg = dict(max_rounds=2, region="trust")
    trainers = {
        flag: ActionTrainer(shifted_system("alpine1"), small_config(region_penalty=flag, **cfg))
        for flag in (False, True)
    }
    for trainer in trainers.values():
        trainer.run()
        trainer.region_center = trainer.center.clone()  # the box centre: scaled 0
        trainer.region_radius = 0.25
    inside_box = torch.zeros(DIM, dtype=trainers[True].model_dtype)
    inside_box[0] = 0.8
    outside_box = inside_box.clone()
    outside_box[1] = -1.5
    trainers[False].last_minimizer = inside_box
    assert trainers[False]._penalty_point() is None  # only the box counts by default
    trainers[False].last_minimizer = outside_box
    expected = outside_box.clamp(-1.0, 1.0)
    assert torch.allclose(trainers[False]._penalty_point()[0], expected)
    trainers[True].last_minimizer = inside_box
    point = trainers[True]._penalty_point()[0]
    assert point[0].item() == pytest.approx(0.25) and bool((point[1:] == 0).all())
    trainers[True].last_minimizer = outside_box
    point = trainers[True]._penalty_point()[0]
    assert point[0].item() == pytest.approx(0.25) and point[1].item() == pytest.approx(-0.25)
    trainers[True].last_minimizer = torch.full((DIM,), 0.1, dtype=trainers[True].model_dtype)
    assert trainers[True]._penalty_point() is None  # inside the region: no penalty


def test_region_penalty_factor_widens_the_region_it_holds_the_minimiser_in():
    """``region_penalty = k`` holds the minimiser in the trust region widened ``k`` times (still inside the box)."""
    trainer = ActionTrainer(shifted_system("alpine1"), small_config(max_rounds=2, region="trust", region_penalty=3.0))
    trainer.run()
    trainer.region_center = trainer.center.clone()
    trainer.region_radius = 0.25
    s_star = torch.zeros(DIM, dtype=trainer.model_dtype)
    s_star[0] = 0.6  # outside the region (0.25) but inside the widened one (0.75)
    trainer.last_minimizer = s_star
    assert trainer._penalty_point() is None
    s_star[1] = -0.9  # outside the widened region too
    point = trainer._penalty_point()[0]
    assert point[0].item() == pytest.approx(0.6) and point[1].item() == pytest.approx(-0.75)
    trainer.region_radius = 0.5  # widened 3x the region would pass the box: the box bounds it
    s_star[1] = -1.4
    assert trainer._penalty_point()[0][1].item() == pytest.approx(-1.0)


def test_region_penalty_rejects_negative_factors_and_reads_true_as_one():
    assert ActionConfig(region="trust", region_penalty=True).region_penalty == 1.0
    assert ActionConfig().region_penalty == 0.0
    with pytest.raises(ValueError, match="region_penalty"):
        ActionConfig(region="trust", region_penalty=-1.0)
    with pytest.raises(ValueError, match="region='trust'"):
        ActionConfig(region_penalty=1.0, region="box")
