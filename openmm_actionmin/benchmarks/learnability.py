"""Learnability test of the action paper: can a plain MLP fit the function at all?

For each benchmark function, an MLP is trained for ``steps`` Adam steps on
fresh uniform samples of the ``dim``-dimensional box (every step a new batch,
so the training loss is a test loss). It is compared with the batch-mean
predictor (predicting each batch's own mean, whose loss is the batch
variance). The function counts as learnable when the MLP's loss over the last
``tail`` steps is below the batch-mean predictor's loss on the same batches.

Targets are scaled by a fixed factor (the standard deviation of one initial
batch) so that the numbers are comparable across functions; the mean-predictor
loss is then close to 1 and the verdict does not depend on the scale.

Command line::

    python -m openmm_actionmin.benchmarks.learnability [--dim 100] [--steps 1000] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import List, Optional, Sequence

import torch

from ..fileio import atomic_write_text
from ..oracles.synthetic import SYNTHETIC_FUNCTIONS, SyntheticOracle


@dataclasses.dataclass
class LearnabilityConfig:
    """Settings of :func:`learnability`.

    Attributes:
        dim: Input dimension.
        steps: Adam steps.
        batch: Samples per step.
        hidden: Hidden widths of the MLP (ReLU).
        lr: Adam learning rate.
        tail: Steps averaged at the end.
        seed: Seed of the samples and the MLP.
        box: ``"default"`` (Plevris & Solorzano ranges) or ``"paper"``
            (half-width 100 for the action paper's functions).
    """

    dim: int = 100
    steps: int = 1000
    batch: int = 256
    hidden: Sequence[int] = (256, 256)
    lr: float = 1e-3
    tail: int = 100
    seed: int = 0
    box: str = "default"


@dataclasses.dataclass
class LearnabilityRow:
    """Outcome for one function.

    Attributes:
        function: Function name.
        half_width: Half-width of the sampled box.
        mlp_loss: Mean MLP loss over the last ``tail`` steps (scaled targets).
        mean_loss: Mean batch-mean-predictor loss over the same batches.
        ratio: ``mlp_loss / mean_loss``.
        learnable: ``mlp_loss < mean_loss`` (False when the samples are all
            equal, e.g. a function that underflows to a constant on the box;
            ``ratio`` is then NaN).
        seconds: Wall time.
    """

    function: str
    half_width: float
    mlp_loss: float
    mean_loss: float
    ratio: float
    learnable: bool
    seconds: float


def learnability(function: str, config: Optional[LearnabilityConfig] = None) -> LearnabilityRow:
    """Train an MLP on one function and compare with the batch-mean predictor.

    Args:
        function: Function name.
        config: Settings (defaults if ``None``).

    Returns:
        A :class:`LearnabilityRow`.
    """
    cfg = config or LearnabilityConfig()
    start = time.perf_counter()
    oracle = SyntheticOracle(function, cfg.dim)
    spec = oracle.spec
    h = (
        spec.action_paper_half_width
        if (cfg.box == "paper" and spec.action_paper_half_width)
        else spec.default_half_width
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        layers: List[torch.nn.Module] = []
        width = cfg.dim
        for n in cfg.hidden:
            layers += [torch.nn.Linear(width, n, dtype=torch.float64), torch.nn.ReLU()]
            width = n
        layers.append(torch.nn.Linear(width, 1, dtype=torch.float64))
        mlp = torch.nn.Sequential(*layers)

    def batch():
        x = h * (2.0 * torch.rand(cfg.batch, cfg.dim, generator=gen, dtype=torch.float64) - 1.0)
        with torch.no_grad():
            y = oracle.energy(x, transform=None)
        return x, y

    x0, y0 = batch()
    offset, scale = float(y0.mean()), float(y0.std()) or 1.0
    opt = torch.optim.Adam(mlp.parameters(), lr=cfg.lr)
    mlp_tail, mean_tail = [], []
    for step in range(cfg.steps):
        x, y = batch()
        y = (y - offset) / scale
        loss = torch.mean((mlp(x / h).squeeze(-1) - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= cfg.steps - cfg.tail:
            mlp_tail.append(float(loss.detach()))
            mean_tail.append(float(torch.mean((y - y.mean()) ** 2)))
    mlp_loss = sum(mlp_tail) / len(mlp_tail)
    mean_loss = sum(mean_tail) / len(mean_tail)
    return LearnabilityRow(
        function=spec.name,
        half_width=float(h),
        mlp_loss=mlp_loss,
        mean_loss=mean_loss,
        ratio=mlp_loss / mean_loss if mean_loss > 0 else float("nan"),
        learnable=bool(mean_loss > 0 and mlp_loss < mean_loss),
        seconds=time.perf_counter() - start,
    )


def format_table(rows: Sequence[LearnabilityRow], config: LearnabilityConfig) -> str:
    """Markdown table of the rows."""
    lines = [
        f"MLP {tuple(config.hidden)} ReLU, {config.steps} Adam steps (lr {config.lr}) on fresh batches of "
        f"{config.batch} uniform samples, D = {config.dim}, {config.box} box, seed {config.seed}; losses are MSE "
        f"of scaled targets averaged over the last {config.tail} steps.",
        "",
        "| function | half-width | MLP loss | batch-mean loss | ratio | learnable |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.function} | {r.half_width:g} | {r.mlp_loss:.4g} | {r.mean_loss:.4g} | {r.ratio:.3f} | "
            f"{'yes' if r.learnable else 'no'} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the learnability test."""
    p = argparse.ArgumentParser(
        prog="python -m openmm_actionmin.benchmarks.learnability",
        description="MLP vs batch-mean predictor on every synthetic function.",
    )
    p.add_argument("--functions", default=",".join(SYNTHETIC_FUNCTIONS), help="comma-separated names")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--box", choices=("default", "paper"), default="default")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    p.add_argument("--threads", type=int, default=1)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the test for every function and print the table."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    cfg = LearnabilityConfig(dim=args.dim, steps=args.steps, batch=args.batch, seed=args.seed, box=args.box)
    rows = []
    for name in [f.strip() for f in args.functions.split(",") if f.strip()]:
        row = learnability(name, cfg)
        print(
            f"{row.function:24s} mlp={row.mlp_loss:.4g} mean={row.mean_loss:.4g} ratio={row.ratio:.3f} "
            f"{'learnable' if row.learnable else 'not learnable'} ({row.seconds:.1f} s)",
            flush=True,
        )
        rows.append(row)
    table = format_table(rows, cfg)
    print()
    print(table)
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
