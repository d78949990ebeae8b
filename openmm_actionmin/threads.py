"""Thread limits of runs: OpenBLAS (NumPy, SciPy) next to torch's own.

Benchmarks and ``minimize_many`` jobs run one process per core on shared machines. torch's
threads are limited by ``torch.set_num_threads``; NumPy's and SciPy's OpenBLAS
keep their own pool (one thread per core by default), and two processes that
each spin a pool of two on two cores slow every BLAS call down by an order of
magnitude or more. :func:`blas_threads` limits that pool, as ``threadpoolctl``
does, without the dependency.
"""

import contextlib
import ctypes
from typing import Any, Iterator, List, Optional, Tuple

_BLAS_SETTERS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads64_",
)
_BLAS_GETTERS = (
    "openblas_get_num_threads",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads64_",
)


def _openblas_libraries() -> List[str]:
    """Paths of the OpenBLAS libraries loaded in this process (Linux ``/proc/self/maps``; else empty)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _openblas_functions() -> List[Tuple[Any, Optional[Any]]]:
    """``(set_num_threads, get_num_threads or None)`` of each OpenBLAS library of NumPy and SciPy.

    Loads SciPy's OpenBLAS first (``scipy.optimize``), so that it is found next to NumPy's.
    Libraries without a setter are left out.
    """
    import scipy.optimize  # noqa: F401 - make sure SciPy's OpenBLAS is loaded

    out = []
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, name) for name in _BLAS_SETTERS if hasattr(lib, name)), None)
        getter = next((getattr(lib, name) for name in _BLAS_GETTERS if hasattr(lib, name)), None)
        if setter is not None:
            out.append((setter, getter))
    return out


def openblas_threads() -> List[int]:
    """Current thread count of each OpenBLAS library that reports one (empty where none is found)."""
    return [int(getter()) for _, getter in _openblas_functions() if getter is not None]


@contextlib.contextmanager
def blas_threads(n: Optional[int]) -> Iterator[None]:
    """Temporarily limit the OpenBLAS libraries of NumPy and SciPy to ``n`` threads.

    Measured on this project's shared 2-core machine: one LJ38 quench by
    SciPy's L-BFGS-B (BLAS/LAPACK on tiny matrices every iteration) took 1.4 s
    with OpenBLAS's default threading and 0.12 s single-threaded. IPOP-CMA-ES
    (the ``cma`` package) on Schaffer F7 at D = 100 ran 430 generations in 30 s
    with two such processes side by side, and 9930 with one BLAS thread each.
    No-op for ``None`` or where no OpenBLAS is found.

    Args:
        n: Threads per OpenBLAS library; ``None`` leaves them alone.
    """
    if n is None:
        yield
        return
    restore = []
    for setter, getter in _openblas_functions():
        old = int(getter()) if getter is not None else None
        setter(int(n))
        restore.append((setter, old))
    try:
        yield
    finally:
        for setter, old in restore:
            if old is not None:
                setter(old)
