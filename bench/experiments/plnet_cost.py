"""Cost of one PLNet forward+backward (training step) and of a frozen inner-loop gradient.

Prints milliseconds per call for Cayley and Householder orthogonal layers at D = 100 and 1000,
and the cost of ``minimizer()``. Timings depend on machine load; compare ratios, not absolutes.

Usage: python bench/experiments/plnet_cost.py [--dims 100 1000] [--batch 256] [--hidden 256] [--repeats 5]
"""

import argparse
import time

import torch

from openmm_actionmin.models import PLNet, PLNetConfig


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"batch={args.batch} hidden={args.hidden} depth={args.depth} dtype={args.dtype} threads={args.threads}")
    print("fwd+bwd: loss backward to all parameters; grad_x: d f / d x only; frozen: inside model.frozen()")
    print(
        f"{'D':>6} {'orthogonal':>12} {'fwd+bwd ms':>11} {'grad_x ms':>11} {'frozen grad_x ms':>17} "
        f"{'minimizer ms':>13}"
    )
    for dim in args.dims:
        for kind in ("cayley", "householder"):
            config = PLNetConfig(dim=dim, depth=args.depth, hidden=args.hidden, orthogonal=kind, seed=0, dtype=dtype)
            model = PLNet(config)
            x = torch.randn(args.batch, dim, dtype=dtype)
            target = torch.randn(args.batch, dtype=dtype)

            def train_step():
                model.zero_grad(set_to_none=True)
                ((model(x) - target) ** 2).mean().backward()

            def inner_grad():
                xr = x.detach().requires_grad_(True)
                torch.autograd.grad(model(xr).sum(), xr)

            t_train = _time(train_step, args.repeats)
            t_grad = _time(inner_grad, args.repeats)
            with model.frozen():
                t_frozen = _time(inner_grad, args.repeats)
            t_min = _time(lambda: model.minimizer(), max(1, args.repeats // 2))
            print(f"{dim:>6} {kind:>12} {t_train:>11.2f} {t_grad:>11.2f} {t_frozen:>17.2f} {t_min:>13.1f}")


if __name__ == "__main__":
    main()
