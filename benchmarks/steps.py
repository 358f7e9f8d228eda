"""End-to-end training steps: the MNIST MLP (784-128-64-32-10, batch 128, Adam) and
the tiny GPT of examples/gpt.py (AdamW, gradient clipping, as train_gpt.py trains it).

A step is zero_grad, forward, loss, backward, optimizer step, and reading the loss, on
a fixed synthetic batch (the data pipeline is not timed). Steps are timed by the wall
clock from a synchronised start to the loss on the host: that is what a training loop
waits for. FLOPs follow the usual 6 x parameters x samples (forward 2, backward 4),
plus attention's 12 L T C per token for the GPT."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np

from .case import Case

ROOT = Path(__file__).resolve().parents[1]
MLP_SIZES = (784, 128, 64, 32, 10)


def captured(t, train):
    """The training step as the target's users run it: smolgrad's captured with
    smolgrad.compile (unless the runner got --no-compile), PyTorch's eager."""
    if t.framework == "smolgrad" and getattr(t, "compile", True):
        return t.lib.compile(train)
    return train


def mnist_step_case(batch: int = 128, quick: bool = False) -> Case:
    params = sum(a * b + b for a, b in zip(MLP_SIZES, MLP_SIZES[1:]))

    def build(t):
        layers = []
        for i, (a, b) in enumerate(zip(MLP_SIZES, MLP_SIZES[1:])):
            layers.append(t.nn.Linear(a, b))
            if i < len(MLP_SIZES) - 2:
                layers.append(t.nn.ReLU())
        model = t.nn.Sequential(*layers).to(t.device)
        opt = t.optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        x = t.tensor(rng.standard_normal((batch, 784), dtype=np.float32))
        y = t.tensor(rng.integers(0, 10, batch).astype(np.int64))

        def train():
            opt.zero_grad()
            loss = t.F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        train = captured(t, train)
        return lambda: train().item()

    return Case("steps", f"MNIST MLP step (batch {batch})", "MNIST MLP step", batch, (batch, *MLP_SIZES), build,
                "GFLOP/s", f"flops = 6 x {params} params x {batch} samples; time = wall clock per step",
                flops=6 * params * batch, items=batch, item_name="samples", quick=quick, gpu_time=False)


def import_gpt():
    """examples/gpt.py as a module, or None when it is not there (yet)."""
    if not (ROOT / "examples" / "gpt.py").exists():
        return None
    examples = str(ROOT / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    return importlib.import_module("gpt")


class TorchGPT:
    """The same GPT in PyTorch (pre-LN blocks, causal attention as in examples/gpt.py,
    tanh-GELU MLP, tied head), built lazily so torch stays optional."""

    @staticmethod
    def build(torch, cfg):
        nn = torch.nn

        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv, self.proj = nn.Linear(cfg.dim, 3 * cfg.dim), nn.Linear(cfg.dim, cfg.dim)

            def forward(self, x):
                B, T, C = x.shape
                hd = C // cfg.n_heads
                q, k, v = self.qkv(x).reshape(B, T, 3, cfg.n_heads, hd).permute(2, 0, 3, 1, 4)
                scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
                future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
                y = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
                return self.proj(y.transpose(1, 2).reshape(B, T, C))

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.attn, self.ln2 = nn.LayerNorm(cfg.dim), Attention(), nn.LayerNorm(cfg.dim)
                self.fc = nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim)
                self.act = nn.GELU(approximate="tanh")
                self.fc_proj = nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim)

            def forward(self, x):
                x = x + self.attn(self.ln1(x))
                return x + self.fc_proj(self.act(self.fc(self.ln2(x))))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.tok_emb, self.pos_emb = nn.Embedding(cfg.vocab_size, cfg.dim), nn.Embedding(cfg.context, cfg.dim)
                self.blocks = nn.ModuleList([Block() for _ in range(cfg.n_layers)])
                self.ln_f = nn.LayerNorm(cfg.dim)

            def forward(self, idx):
                T = idx.shape[1]
                x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
                for block in self.blocks:
                    x = block(x)
                return self.ln_f(x) @ self.tok_emb.weight.T

        return GPT()


def gpt_step_case(config_name: str, batch: int, quick: bool = False) -> Case | str:
    """The GPT training step, or a message saying why it cannot run."""
    try:
        gpt = import_gpt()
    except Exception as e:  # the module is being written, or needs something missing
        return f"GPT step skipped: examples/gpt.py does not import ({type(e).__name__}: {e})"
    if gpt is None or not hasattr(gpt, "GPT") or not hasattr(gpt, "CONFIGS"):
        return "GPT step skipped: examples/gpt.py (the GPT model) is not in this checkout"
    if config_name not in gpt.CONFIGS:
        return f"GPT step skipped: examples/gpt.py has no config {config_name!r}"
    cfg = gpt.CONFIGS[config_name]
    T = cfg.context
    hidden = cfg.mlp_ratio * cfg.dim
    per_layer = 4 * cfg.dim + 3 * cfg.dim * cfg.dim + 3 * cfg.dim + cfg.dim * cfg.dim + cfg.dim \
        + cfg.dim * hidden + hidden + hidden * cfg.dim + cfg.dim
    params = cfg.vocab_size * cfg.dim + T * cfg.dim + cfg.n_layers * per_layer + 2 * cfg.dim
    tokens = batch * T
    flops = 6 * params * tokens + 12 * cfg.n_layers * T * cfg.dim * tokens

    def build(t):
        rng = np.random.default_rng(0)
        idx = rng.integers(0, cfg.vocab_size, (batch, T + 1)).astype(np.int64)
        x, y = t.tensor(idx[:, :-1]), t.tensor(idx[:, 1:].reshape(-1))
        if t.framework == "smolgrad":
            t.lib.manual_seed(0)
            model = gpt.GPT(cfg).to(t.device)
            groups = gpt.param_groups(model, 0.1)
            clip = t.nn.utils.clip_grad_norm_
        else:
            t.lib.manual_seed(0)
            model = TorchGPT.build(t.lib, cfg).to(t.device)
            decay = [p for p in model.parameters() if p.ndim >= 2]
            groups = [{"params": decay, "weight_decay": 0.1},
                      {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0}]
            clip = t.lib.nn.utils.clip_grad_norm_
        opt = t.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95))

        def train():
            opt.zero_grad()
            logits = model(x)
            loss = t.F.cross_entropy(logits.reshape(-1, cfg.vocab_size), y)
            loss.backward()
            clip(model.parameters(), 1.0)
            opt.step()
            return loss

        train = captured(t, train)
        return lambda: train().item()

    shape = (batch, T, cfg.dim, cfg.n_layers, cfg.n_heads)
    return Case("steps", f"GPT {config_name} step (B{batch} T{T} C{cfg.dim} L{cfg.n_layers})", "GPT step", tokens,
                shape, build, "GFLOP/s",
                f"flops = 6 x {params} params x {tokens} tokens + 12 L T C per token; time = wall clock per step",
                flops=flops, items=tokens, item_name="tokens", quick=quick, gpu_time=False)


def cases(quick: bool) -> tuple[list[Case], list[str]]:
    """The end-to-end cases, and messages for those that cannot run here."""
    out: list[Case] = [mnist_step_case(quick=True)]
    notes: list[str] = []
    for name, batch, q in (("tiny", 4, True), ("default", 16, False)):
        case = gpt_step_case(name, batch, q)
        if isinstance(case, str):
            notes.append(case)
            break
        out.append(case)
    return [c for c in out if c.quick] if quick else out, notes
