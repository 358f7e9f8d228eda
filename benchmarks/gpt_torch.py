"""The GPT of examples/train_gpt.py in smolgrad against a straightforward PyTorch version
of the same model, side by side in one run: same config, initial weights (copied from
smolgrad's), data, tokenizer, batches, schedule and steps. Prints both validation-loss
curves and tokens/s. Runs only where torch is installed (it is no dependency of smolgrad).

    python benchmarks/gpt_torch.py --data ../shared/data/tinystories/tinystories_train_sample_2MiB.txt --steps 200

smolgrad's step is captured with smolgrad.compile, as train_gpt.py runs it (--no-compile: eager).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg
from smolgrad import nn as snn, optim as soptim
from smolgrad.data import load_stories
from smolgrad.nn import functional as SF

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from gpt import CONFIGS, GPT, encode_stories, eval_batches, lr_lambda, param_groups, random_batch, split_train_val, train_tokenizer  # noqa: E402


def torch_gpt(torch, config, state: dict):
    """The same GPT in PyTorch, with the weights of smolgrad's state dict."""
    nn, F = torch.nn, torch.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(config.dim, 3 * config.dim), nn.Linear(config.dim, config.dim)

        def forward(self, x):
            B, T, C = x.shape
            h, d = config.n_heads, C // config.n_heads
            q, k, v = self.qkv(x).reshape(B, T, 3, h, d).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(config.dim), Attention(), nn.LayerNorm(config.dim)
            self.fc = nn.Linear(config.dim, config.mlp_ratio * config.dim)
            self.fc_proj = nn.Linear(config.mlp_ratio * config.dim, config.dim)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb, self.pos_emb = nn.Embedding(config.vocab_size, config.dim), nn.Embedding(config.context, config.dim)
            self.blocks = nn.ModuleList([Block() for _ in range(config.n_layers)])
            self.ln_f = nn.LayerNorm(config.dim)

        def forward(self, idx):
            x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
            for b in self.blocks:
                x = b(x)
            return self.ln_f(x) @ self.tok_emb.weight.T

    model = Model()
    model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in state.items()})
    return model


def main() -> int:
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping the comparison (pip install torch)")
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--config", default="default", choices=sorted(CONFIGS))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch's threads; set OPENBLAS_NUM_THREADS and SMOLGRAD_NUMPY_THREADS to match for the numpy "
                        "device (default: each library's own)")
    p.add_argument("--no-compile", action="store_true", help="smolgrad's steps eagerly (default: captured with smolgrad.compile)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = CONFIGS[args.config]
    stories, source = load_stories(args.data)
    train, val = split_train_val(stories)
    tok = train_tokenizer(train, config.vocab_size)
    train_ids, val_ids = encode_stories(tok, train), encode_stories(tok, val)
    val_batches = eval_batches(val_ids, args.batch_size, config.context, args.eval_batches)
    warmup = min(100, max(1, args.steps // 20))
    print(f"{source}: {len(train_ids)} train / {len(val_ids)} val tokens; config {args.config}; {args.steps} steps of "
          f"{args.batch_size} x {config.context} tokens; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"smolgrad's step {'eager' if args.no_compile else 'captured'}")

    sg.manual_seed(args.seed)
    sm = GPT(config).to("numpy")
    tm = torch_gpt(torch, config, sm.state_dict())
    s_opt = soptim.AdamW(param_groups(sm, 0.1), lr=args.lr, betas=(0.9, 0.95))
    t_opt = torch.optim.AdamW([{"params": [p for p in tm.parameters() if p.ndim >= 2], "weight_decay": 0.1},
                               {"params": [p for p in tm.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                              lr=args.lr, betas=(0.9, 0.95))
    s_sched = soptim.lr_scheduler.LambdaLR(s_opt, lr_lambda(warmup, args.steps))
    t_sched = torch.optim.lr_scheduler.LambdaLR(t_opt, lr_lambda(warmup, args.steps))

    def s_step(x, y):
        loss = SF.cross_entropy(sm(x).reshape(-1, config.vocab_size), y.reshape(-1))
        s_opt.zero_grad()
        loss.backward()
        snn.utils.clip_grad_norm_(sm.parameters(), 1.0)
        s_opt.step()
        return loss

    if not args.no_compile:
        s_step = sg.compile(s_step)

    def s_eval():
        total = 0.0
        with sg.no_grad():
            for x, y in val_batches:
                total += SF.cross_entropy(sm(sg.tensor(x)).reshape(-1, config.vocab_size), sg.tensor(y).reshape(-1),
                                          reduction="sum").item()
        return total / sum(y.size for _, y in val_batches)

    def t_eval():
        total = 0.0
        with torch.no_grad():
            for x, y in val_batches:
                total += torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)).reshape(-1, config.vocab_size),
                                                           torch.from_numpy(y).reshape(-1), reduction="sum").item()
        return total / sum(y.size for _, y in val_batches)

    s_time = t_time = 0.0
    print(f"{'step':>5}  {'smolgrad val':>12}  {'torch val':>10}")
    print(f"{0:5d}  {s_eval():12.4f}  {t_eval():10.4f}", flush=True)
    for step in range(args.steps):
        x, y = random_batch(train_ids, args.batch_size, config.context, np.random.default_rng((args.seed, step)))
        t0 = time.perf_counter()
        loss = s_step(sg.tensor(x), sg.tensor(y))
        s_sched.step()
        loss.item()
        t1 = time.perf_counter()
        tl = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)).reshape(-1, config.vocab_size), torch.from_numpy(y).reshape(-1))
        t_opt.zero_grad()
        tl.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
        t_opt.step()
        t_sched.step()
        tl.item()
        t2 = time.perf_counter()
        if step >= 3:  # leave out the first steps (kernel compilation, allocator warm-up, the step's recordings)
            s_time += t1 - t0
            t_time += t2 - t1
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            print(f"{step + 1:5d}  {s_eval():12.4f}  {t_eval():10.4f}", flush=True)
    tokens = (args.steps - 3) * args.batch_size * config.context
    s_rate, t_rate = tokens / s_time, tokens / t_time
    print(f"tokens/s: smolgrad (numpy) {s_rate:.0f}, torch CPU {t_rate:.0f}; smolgrad at {s_rate / t_rate:.2f}x torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
