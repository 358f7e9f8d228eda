"""Philox 4x32-10, the counter-based generator behind smolgrad's device-side random numbers.

Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011); the same generator
as PyTorch's CUDA and cuRAND. A block of four 32-bit words is a pure function of a 128-bit
counter and a 64-bit key, so every element of a random tensor is computed independently
from (key, its own index) in any kernel, on any device, in any order, and a value
recomputed in a second kernel is the same value.

A draw has a key (the 64-bit seed), an offset (each draw takes the next one, see
creation.py) and a stream number (0, 1, ... for several independent tensors of one draw,
such as Box-Muller's two uniforms). Element i of it is word i % 4 of the block at counter
(i // 4, offset, stream, 0). This module is the NumPy implementation (the numpy backend
and the tests use it); backend/wgsl.py has the WGSL one, which gives the same bits.
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


CHUNK = 16384  # blocks computed at a time by `stream_words` (their temporaries stay in cache)


def _blocks(first: int, stop: int, offset: int, stream: int, k0: int, k1: int) -> np.ndarray:
    """Words (stop - first, 4) of the blocks at counters (b, offset, stream, 0), b in [first, stop)."""
    m = stop - first
    x0 = np.arange(first, stop, dtype=np.uint64)
    x1 = np.full(m, offset & 0xFFFFFFFF, np.uint64)
    x2 = np.full(m, stream & 0xFFFFFFFF, np.uint64)
    x3 = np.zeros(m, np.uint64)
    p0, p1 = np.empty(m, np.uint64), np.empty(m, np.uint64)
    mask, s32, m0, m1 = np.uint64(0xFFFFFFFF), np.uint64(32), np.uint64(M0), np.uint64(M1)
    for _ in range(ROUNDS):  # the rounds of philox4x32, in place
        np.multiply(x0, m0, out=p0)
        np.multiply(x2, m1, out=p1)
        np.right_shift(p1, s32, out=x0)
        x0 ^= x1
        x0 ^= np.uint64(k0)
        np.right_shift(p0, s32, out=x2)
        x2 ^= x3
        x2 ^= np.uint64(k1)
        np.bitwise_and(p1, mask, out=x1)
        np.bitwise_and(p0, mask, out=x3)
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF  # (a bump after the last round is unused)
    out = np.empty((m, 4), np.uint32)
    for j, x in enumerate((x0, x1, x2, x3)):
        out[:, j] = x
    return out


def stream_words(start: int, stop: int, offset: int, stream: int, k0: int, k1: int) -> np.ndarray:
    """The uint32 words of elements [start, stop) of a draw (element i: word i % 4 of
    block i // 4), computed a chunk of blocks at a time."""
    first, last = start // 4, -(-stop // 4)
    chunks = [_blocks(b, min(b + CHUNK, last), offset, stream, k0, k1) for b in range(first, last, CHUNK)]
    words = np.concatenate(chunks).reshape(-1) if chunks else np.zeros(0, np.uint32)
    return words[start - 4 * first : stop - 4 * first]


def uniform(words: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Floats in [0, 1) from uint32 words: (w >> 8) * 2^-24, exact in float32 (as on the GPU)."""
    scalar = np.dtype(dtype).type
    return (words >> np.uint32(32 - UNIFORM_BITS)).astype(dtype) * scalar(2.0**-UNIFORM_BITS)
