"""Kernel suites: copy (the bandwidth roofline), elementwise chains, reductions, matmul,
softmax and layer norm rows, attention, and the AdamW update.

Every case is written once against a Target's PyTorch-like surface, so smolgrad (each
device) and PyTorch run the same code. Inputs are float32, made by NumPy with a fixed
seed. Byte counts are the minimum traffic: every input read once and every output
written once (4 bytes an element), which is what a fused kernel achieves."""

from __future__ import annotations

import math

import numpy as np

from .case import Case

F32 = 4
K, M = 1024, 1024 * 1024


def _randn(*shape, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


def _size_name(n: int) -> str:
    if n >= M and n % M == 0:
        return f"{n // M}M"
    if n >= K and n % K == 0:
        return f"{n // K}K"
    return str(n)


# ----- copy: the measured bandwidth peak -----

def copy_case(n: int, quick: bool = False) -> Case:
    """`x * 1`: one read and one write per element, a plain copy kernel."""

    def build(t):
        x = t.tensor(_randn(n))
        return lambda: x * 1.0

    return Case("copy", f"copy {_size_name(n)}", "copy (x * 1)", n, (n,), build, "GB/s",
                "bytes = 2 x 4n (read x, write the copy)", bytes=2 * F32 * n, quick=quick, elements=n)


# ----- elementwise chains -----

# A cycle of cheap ops that keeps values bounded however long the chain.
CHAIN_OPS = (
    ("mul", lambda y: y * 0.999),
    ("add", lambda y: y + 0.001),
    ("abs", lambda y: y.abs()),
    ("neg", lambda y: -y),
)


def chain(x, length: int):
    for i in range(length):
        x = CHAIN_OPS[i % len(CHAIN_OPS)][1](x)
    return x


def elementwise_case(n: int, length: int, quick: bool = False) -> Case:
    def build(t):
        x = t.tensor(_randn(n))
        return lambda: chain(x, length)

    ops = "-".join(name for name, _ in (CHAIN_OPS * length)[:length])
    return Case("elementwise", f"chain {length:2d} ops {_size_name(n)}", f"chain of {length} ops", n, (n,), build,
                "GB/s", f"bytes = 2 x 4n (fused: read x once, write once); flops = {length}n ({ops})",
                flops=length * n, bytes=2 * F32 * n, quick=quick, elements=n)


# ----- reductions -----

def reduce_full_case(n: int, quick: bool = False) -> Case:
    def build(t):
        x = t.tensor(_randn(n))
        return lambda: x.sum()

    return Case("reductions", f"sum full {_size_name(n)}", "sum (full)", n, (n,), build, "GB/s",
                "bytes = 4n read + 4 written; flops = n adds", flops=n, bytes=F32 * (n + 1), quick=quick, elements=n)


def reduce_rows_case(n: int, cols: int = 1024, quick: bool = False) -> Case:
    rows = n // cols

    def build(t):
        x = t.tensor(_randn(rows, cols))
        return lambda: x.sum(dim=1)

    return Case("reductions", f"sum rows {rows}x{cols}", f"sum per row ({cols} cols)", n, (rows, cols), build, "GB/s",
                "bytes = 4n read + 4 rows written; flops = n adds", flops=n, bytes=F32 * (n + rows),
                quick=quick, elements=n)


# ----- matmul -----

def matmul_case(m: int, k: int, n: int, suite_series: str, label: str, quick: bool = False) -> Case:
    def build(t):
        a = t.tensor(_randn(m, k, seed=1, scale=1 / math.sqrt(k)))
        b = t.tensor(_randn(k, n, seed=2))
        return lambda: a @ b

    return Case("matmul", label, suite_series, m * n * k, (m, k, n), build, "GFLOP/s",
                "flops = 2mkn; bytes = 4(mk + kn + mn)", flops=2 * m * k * n, bytes=F32 * (m * k + k * n + m * n),
                quick=quick, elements=max(m * k, k * n, m * n))


def square_matmul_case(n: int, quick: bool = False) -> Case:
    return matmul_case(n, n, n, "square n x n @ n x n", f"square {n}", quick)


def transformer_matmul_case(bt: int, c: int, what: str, quick: bool = False) -> Case:
    return matmul_case(bt, c, 4 * c, "(B*T, C) @ (C, 4C)", f"{what} ({bt},{c})@({c},{4 * c})", quick)


# ----- softmax and layer norm rows -----

def softmax_case(rows: int, cols: int, quick: bool = False) -> Case:
    n = rows * cols

    def build(t):
        x = t.tensor(_randn(rows, cols, scale=3.0))
        return lambda: x.softmax(dim=-1)

    return Case("rows", f"softmax {rows}x{cols}", f"softmax rows ({cols} cols)", n, (rows, cols), build, "GB/s",
                "bytes = 2 x 4n (read once, write once); flops ~ 5n (max, sub, exp, sum, div)",
                flops=5 * n, bytes=2 * F32 * n, quick=quick, elements=n)


def layernorm_case(rows: int, cols: int, quick: bool = False) -> Case:
    n = rows * cols

    def build(t):
        x = t.tensor(_randn(rows, cols))
        w = t.tensor(np.ones(cols, np.float32) * 1.5)
        b = t.tensor(np.full(cols, 0.1, np.float32))
        return lambda: t.F.layer_norm(x, (cols,), w, b)

    return Case("rows", f"layer_norm {rows}x{cols}", f"layer_norm rows ({cols} cols)", n, (rows, cols), build, "GB/s",
                "bytes = 2 x 4n + 8C (read x once, write once, weight and bias); flops ~ 8n",
                flops=8 * n, bytes=F32 * (2 * n + 2 * cols), quick=quick, elements=n)


# ----- attention -----

def attention_case(b: int, h: int, t_len: int, d: int, what: str, quick: bool = False) -> Case:
    """softmax(mask(Q K^T / sqrt(d))) V with a causal mask, as the GPT example writes it."""

    def build(t):
        q = t.tensor(_randn(b, h, t_len, d, seed=1))
        k = t.tensor(_randn(b, h, t_len, d, seed=2))
        v = t.tensor(_randn(b, h, t_len, d, seed=3))
        future = t.tensor(np.triu(np.ones((t_len, t_len), dtype=bool), k=1))
        scale = 1.0 / math.sqrt(d)

        def step():
            scores = (q @ k.transpose(-2, -1)) * scale
            scores = scores.masked_fill(future, float("-inf"))
            return scores.softmax(dim=-1) @ v

        return step

    bhtd = b * h * t_len * d
    return Case("attention", f"{what} B{b} H{h} T{t_len} d{d}", "causal attention (B, H, T, d)",
                b * h * t_len * t_len, (b, h, t_len, d), build, "GFLOP/s",
                "flops = 4 B H T^2 d (QK^T and @V, the mask not exploited); "
                "bytes = 4 x 4BHTd (Q, K, V read, out written: the fused minimum)",
                flops=4 * b * h * t_len * t_len * d, bytes=4 * F32 * bhtd, quick=quick, elements=b * h * t_len * t_len)


def fused_attention_case(b: int, h: int, t_len: int, d: int, what: str, quick: bool = False) -> Case:
    """F.scaled_dot_product_attention(q, k, v, is_causal=True): one flash-attention kernel on
    webgpu (the same inputs and flop count as attention_case, the unfused composition)."""

    def build(t):
        q = t.tensor(_randn(b, h, t_len, d, seed=1))
        k = t.tensor(_randn(b, h, t_len, d, seed=2))
        v = t.tensor(_randn(b, h, t_len, d, seed=3))
        return lambda: t.F.scaled_dot_product_attention(q, k, v, is_causal=True)

    bhtd = b * h * t_len * d
    return Case("attention", f"fused {what} B{b} H{h} T{t_len} d{d}", "fused causal attention (B, H, T, d)",
                b * h * t_len * t_len, (b, h, t_len, d), build, "GFLOP/s",
                "flops = 4 B H T^2 d (as the unfused case); bytes = 4 x 4BHTd (Q, K, V read, out written)",
                flops=4 * b * h * t_len * t_len * d, bytes=4 * F32 * bhtd, quick=quick, elements=b * h * t_len * d)


# ----- AdamW -----

def adamw_case(n: int, quick: bool = False) -> Case:
    def build(t):
        p = t.nn.Parameter(t.tensor(_randn(n, seed=1)))
        p.grad = t.tensor(_randn(n, seed=2, scale=0.01))
        opt = t.optim.AdamW([p], lr=1e-3, weight_decay=0.01)

        def step():
            opt.step()
            return p

        return step

    return Case("adamw", f"AdamW update {_size_name(n)} params", "AdamW update", n, (n,), build, "GB/s",
                "bytes = 7 x 4n (read param, grad, m, v; write param, m, v); flops ~ 15n",
                flops=15 * n, bytes=7 * F32 * n, quick=quick, elements=n)


# ----- the suites -----

def cases(quick: bool) -> list[Case]:
    """Every kernel case; those with quick=True form the --quick subset."""
    out: list[Case] = [copy_case(n, quick=n == 4 * M) for n in (M, 4 * M, 16 * M)]
    for n in (M, 4 * M, 16 * M):
        out += [elementwise_case(n, length, quick=(n == M and length in (1, 4, 16)))
                for length in (1, 2, 4, 8, 16)]
    for n in (K, 64 * K, M, 4 * M, 16 * M):
        out.append(reduce_full_case(n, quick=n == M))
        if n >= 64 * K:
            out.append(reduce_rows_case(n, quick=n == M))
    out += [square_matmul_case(n, quick=n == 256) for n in (64, 128, 256, 512, 1024, 2048)]
    out += [transformer_matmul_case(512, 128, "tiny GPT, B*T=512", quick=True),
            transformer_matmul_case(2048, 128, "GPT default, B16 T128"),
            transformer_matmul_case(1024, 768, "GPT-2 small, B1 T1024")]
    out += [softmax_case(256, 1024, quick=True), softmax_case(2048, 1024), softmax_case(8192, 128),
            layernorm_case(2048, 128, quick=True), layernorm_case(2048, 768), layernorm_case(8192, 768)]
    out += [attention_case(2, 4, 64, 32, "tiny", quick=True), attention_case(16, 4, 128, 32, "GPT default"),
            attention_case(4, 12, 256, 64, "GPT-2 heads"), attention_case(1, 12, 1024, 64, "GPT-2 small")]
    out += [fused_attention_case(2, 4, 64, 32, "tiny", quick=True), fused_attention_case(16, 4, 128, 32, "GPT default"),
            fused_attention_case(4, 12, 256, 64, "GPT-2 heads"), fused_attention_case(1, 12, 1024, 64, "GPT-2 small")]
    # fused against unfused at T = 128, 512, 1024 with a small B * H (issue 14)
    for t_len in (128, 512, 1024):
        out += [attention_case(1, 2, t_len, 32, "B*H=2"), fused_attention_case(1, 2, t_len, 32, "B*H=2")]
    out += [adamw_case(M, quick=True)]
    return [c for c in out if c.quick] if quick else out
