"""NumPy kernels of the BERT forward pass (query.py): GELU, LayerNorm, one dense + residual + norm step,
and the thread helpers that spread element-wise work and attention over the cores for document batches.

All work in place on float32 arrays; NumPy releases the GIL in its loops, so slices run in parallel.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

_GELU_BLOCK = 32_768  # floats per step: the temporaries stay in L2 (whole-array passes were 4x slower)
# Abramowitz & Stegun 7.1.26: erf(a) = 1 - poly(t) * exp(-a^2), t = 1 / (1 + p a), |error| <= 1.5e-7,
# under float32 rounding of the activations (scipy's erf is scalar code: a third of a batch's time).
_ERF_P = np.float32(0.3275911)
_ERF_POLY = [np.float32(c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]


def gelu_(h: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU of `h` in place, block by block, float32."""
    flat = h.reshape(-1)
    a, t, y = (np.empty(_GELU_BLOCK, np.float32) for _ in range(3))
    for i in range(0, flat.size, _GELU_BLOCK):
        x = flat[i : i + _GELU_BLOCK]
        n = x.size
        _erf_abs(x, a[:n], t[:n], y[:n])
        np.copysign(y[:n], x, out=y[:n])
        y[:n] += 1
        y[:n] *= 0.5
        x *= y[:n]
    return h


def _erf_abs(x: np.ndarray, a: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
    """y = erf(|x| / sqrt 2), with `a` and `t` as scratch."""
    np.multiply(x, np.float32(1 / math.sqrt(2.0)), out=a)
    np.abs(a, out=a)
    np.multiply(a, _ERF_P, out=t)
    t += 1
    np.reciprocal(t, out=t)
    np.multiply(t, _ERF_POLY[0], out=y)
    for c in _ERF_POLY[1:]:
        y += c
        y *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    y *= a
    np.subtract(1, y, out=y)


class _OneBlasThread:
    """One BLAS thread while any thread of the process is inside (counted, so overlapping users of the
    encoder do not restore each other's limit too early).

    Attention is a dozen small products per text; OpenBLAS wakes its second thread for each, and on a
    busy 2-core machine that wait made attention 8-25x slower than one thread (bench_embed.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limit: Any = None
        self._controller: Any = None

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                if self._controller is None:  # finding the BLAS libraries takes 2 ms: once, not per layer
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limit = self._controller.limit(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limit.restore_original_limits()


ONE_BLAS_THREAD = _OneBlasThread()
ONE_THREAD_TOKENS = 512  # a query batch: its products are small, and serve limits BLAS to one thread anyway


def layer_norm_(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    """LayerNorm of the rows of `x`, in place."""
    x -= x.mean(-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var /= x.shape[-1]
    var += eps
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias


_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def rows(x: np.ndarray) -> list[np.ndarray]:
    """The rows of `x` in one view per thread."""
    step = -(-len(x) // _THREADS)
    return [x[i : i + step] for i in range(0, len(x), step)]


def text_groups(bounds: np.ndarray) -> list[slice]:
    """The texts of a batch in one group per thread, of about equal tokens (slices of text indexes)."""
    total = int(bounds[-1])
    groups, start = [], 0
    for t in range(1, _THREADS + 1):
        stop = start if t < _THREADS else len(bounds) - 1
        while t < _THREADS and stop < len(bounds) - 1 and bounds[stop] < total * t / _THREADS:
            stop += 1
        if stop > start:
            groups.append(slice(start, stop))
        start = stop
    return groups


def inline(parts: Sequence[Any], fn: Callable[..., object], *args: Any) -> None:
    for part in parts:
        fn(part, *args)


def spread(parts: Sequence[Any], fn: Callable[..., object], *args: Any) -> None:
    """`fn(part, *args)` for each part, on the encoder's threads (NumPy releases the GIL in its loops)."""
    global _pool
    if len(parts) <= 1:
        return inline(parts, fn, *args)
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="caprl-numpy")
    for future in [_pool.submit(fn, part, *args) for part in parts]:
        future.result()


def dense_residual_norm(
    run: Callable[..., None], h: np.ndarray, weight: np.ndarray, bias: np.ndarray, residual: np.ndarray,
    norm: tuple[np.ndarray, np.ndarray], eps: float,
) -> np.ndarray:  # fmt: skip
    """LayerNorm(h @ weight + bias + residual), a new array; `run` is `spread` or `inline`."""
    y = h @ weight
    y += bias
    y += residual
    run(rows(y), layer_norm_, norm[0], norm[1], eps)
    return y
