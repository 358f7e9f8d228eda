"""Train a tiny GPT on TinyStories, then write a few stories with it.

    python examples/train_gpt.py                         # the default config, 1500 steps
    python examples/train_gpt.py --config 260k --device webgpu --steps 5000
    python examples/train_gpt.py --steps 3000 --resume   # continue from the checkpoint
    python examples/train_gpt.py --dtype float16         # mixed precision (autocast + GradScaler)
    python examples/train_gpt.py --live --snapshot gpt.png   # watch it train; a PNG of the view at the end
    python examples/sample_gpt.py --prompt "Once upon a time"
    mpiexec -n 2 python examples/train_gpt.py            # 2 processes, each on half of every batch

Data: --data FILE_OR_FOLDER, else $SMOLGRAD_DATA/tinystories/, else TinyStories-valid.txt
(19 MB; --full: the 1.9 GB train file) downloaded once into ~/.cache/smolgrad, else,
offline, a built-in corpus of template stories. The last 10% of the stories are held out
for validation. A byte-level BPE tokenizer is trained on the rest and saved beside the
checkpoint; a checkpoint, the metrics (JSON lines) and a loss curve (with matplotlib)
are written there too."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg
import smolgrad.distributed as dist
from smolgrad import nn, optim
from smolgrad.data import load_stories
from smolgrad.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py and gpt.py, also under PYTHONSAFEPATH=1
from common import (Progress, data_parallel, distributed, finish_view, open_view, parser, rank_part, sum_over_ranks,
                    view_arguments)
from gpt import (CONFIGS, EOT, GPT, attention_probs, evaluate, encode_stories, eval_batches, generate, load_tokenizer,
                 lr_lambda, param_groups, random_batch, split_train_val, stream_text, train_tokenizer)


def arguments(argv):
    p = parser(__doc__)
    p.add_argument("--config", default="default", choices=sorted(CONFIGS), help="model size (default: %(default)s)")
    p.add_argument("--data", default=None, help="a TinyStories-format .txt file, or a folder of them")
    p.add_argument("--full", action="store_true", help="download the full TinyStories train file (1.9 GB)")
    p.add_argument("--offline", action="store_true", help="never download: without local data, use the built-in stories")
    p.add_argument("--vocab", type=int, default=None, help="BPE vocabulary size (default: the config's, 512)")
    p.add_argument("--context", type=int, default=None, help="context length (default: the config's)")
    p.add_argument("--steps", type=int, default=1500, help="training steps, in total when resuming (default: %(default)s)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="end this run after step N (saving a checkpoint), to go on later with --resume")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 5%% of --steps, at most 100)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                   help="float16: mixed precision (autocast, float32 master weights, GradScaler) (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay on matrices (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=100, help="validation loss every N steps (default: %(default)s)")
    p.add_argument("--eval-batches", type=int, default=8, help="validation batches per evaluation (default: %(default)s)")
    p.add_argument("--checkpoint", default="checkpoints/gpt.safetensors",
                   help="checkpoint path; the tokenizer, metrics and loss curve go beside it (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint (with its config and tokenizer)")
    p.add_argument("--prompt", default="Once upon a time", help="prompt for the samples at the end")
    p.add_argument("--samples", type=int, default=2, help="stories to write at the end (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens per sample (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0: greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest tokens (default: %(default)s)")
    view_arguments(p)
    return p.parse_args(argv)


def side_paths(checkpoint: Path) -> dict[str, Path]:
    """The files written beside a checkpoint."""
    stem = checkpoint.with_suffix("")
    return {"tokenizer": Path(f"{stem}.tokenizer.json"), "metrics": Path(f"{stem}.metrics.jsonl"),
            "plot": Path(f"{stem}.loss.png")}


def plot_losses(metrics_path: Path, out: Path) -> bool:
    """Draw train and validation loss from the metrics file; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train", alpha=0.6)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def show_gpt(view, model: GPT, batch: dict) -> None:
    """Live view panels: the curves, block 0's attention map (head 0, on the first sequence of
    the latest batch), the token embedding's gradient, and the latest sample."""
    for name in ("loss", "lr", "tokens_per_s"):
        view.curve(name)
    device = model.tok_emb.weight.device

    def attention_map():
        if "x" not in batch:
            return None
        return attention_probs(model, sg.tensor(batch["x"][:1], device=device), 0)[0, 0]

    view.heatmap("attention: block 0, head 0", attention_map)
    view.histogram("token embedding gradient", lambda: model.tok_emb.weight.grad)
    view.text("latest sample", "")


def view_sample(view, model, tok, args, step: int, device) -> None:
    """Write a short sample into the live view's text panel."""
    ids = generate(model, tok.encode(args.prompt).ids, 48, args.temperature, args.top_k, seed=args.seed,
                   stop_id=tok.token_to_id(EOT), device=device)
    view.text("latest sample", f"step {step}: {args.prompt}{tok.decode(list(ids))}")
    model.train()


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    rank, world = distributed()  # under mpiexec: rank 0 prints, evaluates, samples and writes files
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the number of ranks, {world}")
    checkpoint = Path(args.checkpoint)
    paths = side_paths(checkpoint)
    sg.manual_seed(args.seed)

    state = None
    if args.resume:
        if not checkpoint.is_file():
            raise SystemExit(f"--resume: no checkpoint at {checkpoint}; run without --resume first, or pass --checkpoint PATH")
        state = sg.load(checkpoint, device=args.device)
        config = CONFIGS["default"].from_dict(state["config"])
    else:
        config = CONFIGS[args.config]
        config = type(config)(**{**config.to_dict(),
                                 **({"vocab_size": args.vocab} if args.vocab else {}),
                                 **({"context": args.context} if args.context else {})})

    # data and tokenizer
    stories, source = load_stories(args.data, full=args.full, download_ok=not args.offline)
    train_stories, val_stories = split_train_val(stories)
    t0 = time.perf_counter()
    if state is not None:
        tok = load_tokenizer(state["tokenizer"])
    elif rank == 0:
        tok = train_tokenizer(train_stories, config.vocab_size)
        paths["tokenizer"].parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(paths["tokenizer"]))
    if state is None and world > 1:  # the other ranks read rank 0's tokenizer
        dist.barrier()
        tok = load_tokenizer(paths["tokenizer"]) if rank else tok
    if tok.get_vocab_size() > config.vocab_size:
        raise SystemExit(f"the tokenizer has {tok.get_vocab_size()} tokens, more than the model's {config.vocab_size}")
    train_ids, val_ids = encode_stories(tok, train_stories), encode_stories(tok, val_stories)
    print(f"data: {len(train_stories)} training and {len(val_stories)} validation stories from {source}; "
          f"{len(train_ids)} and {len(val_ids)} tokens (BPE vocabulary {tok.get_vocab_size()}, {time.perf_counter() - t0:.1f} s)")
    context = min(config.context, len(train_ids) - 1)

    # model and optimizer
    model = GPT(config).to(args.device)
    device = model.tok_emb.weight.device
    optimizer = optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    half = args.dtype == "float16"  # matmuls and attention in float16, float32 weights and losses
    scaler = sg.amp.GradScaler(device, enabled=half)
    if state is not None and half and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    net = data_parallel(model)  # the bare model is evaluated and saved: checkpoints do not depend on the rank count
    warmup = args.warmup if args.warmup is not None else min(100, max(1, args.steps // 20))
    scheduler = optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, args.steps), last_epoch=start - 1)
    print(f"model: GPT {config.to_dict()}, {model.num_parameters():,} parameters, on '{device}'"
          + (f"; resuming after step {start}" if start else "")
          + (f"; {world} ranks with {args.batch_size // world} sequences each per step" if world > 1 else ""))

    val_batches = eval_batches(val_ids, args.batch_size, context, args.eval_batches)
    paths["metrics"].parent.mkdir(parents=True, exist_ok=True)
    metrics = open(paths["metrics"], "a" if start else "w") if rank == 0 else open(os.devnull, "w")

    def save(step: int) -> None:
        sg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "scaler": scaler.state_dict(), "config": config.to_dict(), "tokenizer": str(paths["tokenizer"])}, checkpoint)

    view, batch = open_view(args, "GPT") if rank == 0 else None, {}
    if view is not None:
        show_gpt(view, model, batch)
    val_loss = None
    if start == 0 and rank == 0:
        first = evaluate(model, val_batches, device)
        metrics.write(json.dumps({"step": 0, "val_loss": first}) + "\n")
        if view is not None:
            view.update(step=0, val_loss=first)
        print(f"step     0/{args.steps}  val loss {first:.4f}", flush=True)
    model.train()
    end = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
    bar = Progress(range(start, end), desc="train", enabled=not args.no_progress and rank == 0)
    tokens, t_start = 0, time.perf_counter()

    def train_step(x, y):
        with sg.autocast(device, enabled=half):
            logits = net(x)
            loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)  # skipped when a gradient is inf or nan
        scaler.update()
        return loss

    # captured once, then replayed with no Python per op; not with float16, whose GradScaler
    # reads the device at every step (to skip steps with inf or nan gradients), nor across
    # ranks, whose gradient all-reduce runs in backward hooks on the host
    if not args.no_compile and not half and world == 1:
        train_step = sg.compile(train_step)
    for step in bar:
        # the batch depends only on (seed, step): a resumed run sees the same batches
        x, y = random_batch(train_ids, args.batch_size, context, np.random.default_rng((args.seed, step)))
        tokens += x.size
        x, y = rank_part(x, rank, world), rank_part(y, rank, world)  # this rank's share of the batch
        loss = train_step(sg.tensor(x, device=device), sg.tensor(y, device=device))
        scheduler.step()
        loss_value = sum_over_ranks(loss.item())[0] / world
        rate = tokens / (time.perf_counter() - t_start)
        bar.set_postfix(loss=loss_value, tok_s=f"{rate:.0f}")
        row = {"step": step + 1, "loss": loss_value, "lr": scheduler.get_last_lr()[0], "tokens_per_s": rate}
        done = step + 1
        if view is not None:
            batch["x"] = x  # token ids (host): the attention map is computed from them when drawn
            view.update(step=done, loss=loss_value, lr=row["lr"], tokens_per_s=rate)
        if rank == 0 and (done % args.eval_every == 0 or done == end):
            val_loss = evaluate(model, val_batches, device)
            row["val_loss"] = val_loss
            save(done)
            if view is not None:
                view.update(step=done, val_loss=val_loss)
                view_sample(view, model, tok, args, done, device)
            print(f"\rstep {done:5d}/{args.steps}  train loss {loss_value:.4f}  val loss {val_loss:.4f}  "
                  f"lr {row['lr']:.2e}  {rate:.0f} tokens/s", flush=True)
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
    metrics.close()
    if rank != 0:
        return 0

    if val_loss is None:
        print(f"nothing to do: the checkpoint already has {start} steps (ask for more with --steps)")
    else:
        print(f"final validation loss {val_loss:.4f} after {end} steps")
    if plot_losses(paths["metrics"], paths["plot"]):
        print(f"loss curve: {paths['plot']}")
    else:
        print("matplotlib is not installed: no loss curve (pip install matplotlib)")

    eot = tok.token_to_id(EOT)
    for i in range(args.samples):
        print(f"\n--- sample {i + 1} (temperature {args.temperature}, top-k {args.top_k}) ---")
        sys.stdout.write(args.prompt)
        ids = generate(model, tok.encode(args.prompt).ids, args.max_new_tokens, args.temperature, args.top_k,
                       seed=args.seed + i, stop_id=eot, device=device)
        text = stream_text(tok, ids, lambda s: (sys.stdout.write(s), sys.stdout.flush()))
        print()
        if view is not None and i == 0:
            view.text("latest sample", f"final sample: {args.prompt}{text}")
    finish_view(view, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
