"""Philox 4x32-10, the counter-based generator behind smolgrad's device-side random numbers.

Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011); the same generator
as PyTorch's CUDA and cuRAND. A block of four 32-bit words is a pure function of a 128-bit
counter and a 64-bit key, so every element of a random tensor is computed independently
from (key, its own index) in any kernel, on any device, in any order, and a value
recomputed in a second kernel is the same value.

smolgrad's counter for element i of a draw is (i, offset, 0, 0) and its key is the 64-bit
seed; each draw takes the next offset (see creation.py). This module is the NumPy
implementation (the numpy backend and the tests use it); backend/wgsl.py has the WGSL one,
which gives the same bits.
"""

from __future__ import annotations

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # key schedule (Weyl) increments
ROUNDS = 10
UNIFORM_BITS = 24  # a float32 in [0, 1) from the top 24 bits of a word: k * 2^-24


def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = ROUNDS) -> tuple[np.ndarray, ...]:
    """The four output words for counters (c0, c1, c2, c3) and key (k0, k1), elementwise
    over NumPy arrays or scalars (anything that converts to uint32; broadcasting applies)."""
    c = [np.asarray(x, dtype=np.uint64) & 0xFFFFFFFF for x in (c0, c1, c2, c3)]
    k0 = np.uint64(int(k0) & 0xFFFFFFFF) if np.ndim(k0) == 0 else np.asarray(k0, np.uint64)
    k1 = np.uint64(int(k1) & 0xFFFFFFFF) if np.ndim(k1) == 0 else np.asarray(k1, np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    for r in range(rounds):
        p0 = c[0] * np.uint64(M0)  # 32 x 32 -> 64 bits: no overflow in uint64
        p1 = c[2] * np.uint64(M1)
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & mask]
        if r != rounds - 1:
            k0 = (k0 + np.uint64(W0)) & mask
            k1 = (k1 + np.uint64(W1)) & mask
    return tuple(x.astype(np.uint32) for x in c)


def uniform(words: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Floats in [0, 1) from uint32 words: (w >> 8) * 2^-24, exact in float32 (as on the GPU)."""
    scalar = np.dtype(dtype).type
    return (words >> np.uint32(32 - UNIFORM_BITS)).astype(dtype) * scalar(2.0**-UNIFORM_BITS)
