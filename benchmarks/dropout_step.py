"""A dropout-heavy training step (forward + backward of the GPT example with nanoGPT's
dropout placement), with the mask drawn on the host and uploaded (smolgrad's old
F.dropout, reproduced here) and drawn on the device (today's F.dropout), side by side.

    python benchmarks/dropout_step.py [--device numpy|webgpu] [--config tiny|default]
                                      [--batch B] [--steps N] [--p P]

Reports wall and process-CPU ms per step (the variants alternate step by step, so both
see the same machine load) and bytes uploaded per step for each way."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import smolgrad as sg  # noqa: E402
import smolgrad.nn.functional as F  # noqa: E402
from smolgrad.device import get_backend  # noqa: E402
from smolgrad.tensor import Tensor  # noqa: E402

import gpt  # noqa: E402


def host_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """smolgrad's F.dropout before masks moved to the device: drawn by NumPy, uploaded."""
    if not training or p == 0.0:
        return x
    keep = sg.generator().random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype.np), dtype=x.dtype, device=x.device)


class DropoutGPT(gpt.GPT):
    """The example GPT with dropout where nanoGPT has it: after the embeddings, on the
    attention probabilities, and after each residual branch."""

    def __init__(self, config, p: float, dropout):
        super().__init__(config)
        self.p, self.dropout = p, dropout

    def attention(self, attn, x):
        B, T, C = x.shape
        qkv = attn.qkv(x).reshape(B, T, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(attn.head_dim))
        future = sg.ones(T, T, dtype=sg.bool, device=x.device).triu(diagonal=1)
        probs = self.dropout(F.softmax(scores.masked_fill(future, float("-inf")), dim=-1), self.p)
        return self.dropout(attn.proj((probs @ v).transpose(1, 2).reshape(B, T, C)), self.p)

    def forward(self, idx):
        B, T = idx.shape
        x = self.dropout(self.tok_emb(idx) + self.pos_emb(sg.arange(T, device=idx.device)), self.p)
        for b in self.blocks:
            x = x + self.attention(b.attn, b.ln1(x))
            x = x + self.dropout(b.fc_proj(b.act(b.fc(b.ln2(x)))), self.p)
        return self.ln_f(x) @ self.tok_emb.weight.T


class Variant:
    """One way of dropping out: its model and a counter of the bytes uploaded."""

    def __init__(self, device: str, config, p: float, dropout):
        sg.manual_seed(0)
        self.device, self.config = device, config
        self.model = DropoutGPT(config, p, dropout).to(device)
        self.times: list[float] = []
        self.cpu: list[float] = []  # process CPU time (all threads, lavapipe's included): robust to other load
        self.uploads: list[int] = []

    def step(self, ids: np.ndarray, record: bool) -> None:
        """Forward, backward and reading the loss, timed; bytes uploaded counted."""
        backend = get_backend(self.device)
        uploaded = [0]
        original = type(backend).upload

        def counting_upload(self, flat, dtype):
            uploaded[0] += np.asarray(flat).size * 4  # every dtype is 4 bytes on the device
            return original(self, flat, dtype)

        type(backend).upload = counting_upload
        try:
            start, cpu = time.perf_counter(), time.process_time()
            x, y = sg.tensor(ids[:, :-1], device=self.device), sg.tensor(ids[:, 1:], device=self.device)
            for prm in self.model.parameters():
                prm.grad = None
            loss = F.cross_entropy(self.model(x).reshape(-1, self.config.vocab_size), y.reshape(-1))
            loss.backward()
            sg.realize(*[prm.grad for prm in self.model.parameters()])
            loss.item()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            type(backend).upload = original
        if record:
            self.times.append(elapsed)
            self.cpu.append(cpu)
            self.uploads.append(uploaded[0])


def dropout_elements(config, batch: int) -> int:
    T, C = config.context, config.dim
    return batch * T * C * (1 + 2 * config.n_layers) + batch * config.n_heads * T * T * config.n_layers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="numpy")
    ap.add_argument("--config", default="tiny", choices=sorted(gpt.CONFIGS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--p", type=float, default=0.1)
    args = ap.parse_args()
    config = gpt.CONFIGS[args.config]
    print(f"device {args.device}, config {args.config} ({config}), batch {args.batch}, p {args.p}")
    variants = {
        "host mask (before)": Variant(args.device, config, args.p, host_dropout),
        "device mask (after)": Variant(args.device, config, args.p, F.dropout),
    }
    rng = np.random.default_rng(0)
    for step in range(args.steps + 2):  # two warm-up steps compile the kernels
        ids = rng.integers(0, config.vocab_size, size=(args.batch, config.context + 1))
        for v in variants.values():  # alternating, so both see the same machine load
            v.step(ids, record=step >= 2)
    print(f"{dropout_elements(config, args.batch)} dropout elements per step; times over {args.steps} steps")
    for name, v in variants.items():
        up = sum(v.uploads) / len(v.uploads)
        print(
            f"{name:<22} wall median {statistics.median(v.times) * 1e3:8.1f} ms/step (min {min(v.times) * 1e3:7.1f}), "
            f"CPU median {statistics.median(v.cpu) * 1e3:8.1f} ms/step   uploaded {up / 1024:9.2f} KiB/step"
        )
    before, after = (statistics.median(v.cpu) for v in variants.values())
    print(f"after/before (median CPU time): {after / before:.2f}")

if __name__ == "__main__":
    main()
