"""Helpers shared by the examples: command-line options, a progress bar, an MLP, and
MNIST data, evaluation and checkpoints. Only smolgrad's public API is used here."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg
import smolgrad.distributed as dist
from smolgrad import nn, optim
from smolgrad.data import MNIST, DataLoader, TensorDataset, default_collate


# ----- command line -----

def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser that shows the example's docstring, with the options every
    example has: --device, --seed and --no-progress."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None,
                   help="'webgpu' or 'numpy' (alias 'cpu'); default: smolgrad's default device")
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and data order (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-compile", action="store_true",
                   help="run every training step eagerly (default: smolgrad.compile captures the step and replays it)")
    return p


# ----- several processes (mpiexec -n N python examples/...) -----

def distributed() -> tuple[int, int]:
    """(rank, world size): joins the process group when started by mpiexec, else (0, 1).
    Only rank 0 prints: the other ranks' stdout goes to /dev/null (errors still show)."""
    if not dist.is_initialized():
        dist.init_process_group()  # "mpi" under mpiexec, else the one-process "single" backend
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return rank, world


def data_parallel(model: nn.Module) -> nn.Module:
    """The model wrapped in DistributedDataParallel when several ranks run, else itself."""
    return nn.parallel.DistributedDataParallel(model) if dist.get_world_size() > 1 else model


def rank_part(samples: list, rank: int, world: int) -> list:
    """This rank's share of a global batch: every world-th sample from the rank-th, so the
    global batches are the same for any number of ranks (resuming with another count is exact)."""
    if len(samples) < world:
        raise SystemExit(f"a batch of {len(samples)} cannot be split over {world} ranks: use a larger --batch-size")
    return samples[rank::world]


def sum_over_ranks(*values: float) -> list[float]:
    """The sums over all ranks of these numbers (the values themselves in one process)."""
    t = sg.tensor(list(values), dtype=sg.float64, device="numpy")
    dist.all_reduce(t)
    return t.tolist()


# ----- progress bar -----

class Progress:
    """A one-line progress bar on stderr (count, elapsed time, ETA, rate and metrics):

        for x in (bar := Progress(loader, desc="epoch 1")):
            ...
            bar.set_postfix(loss=0.25)

    Drawn by tqdm where it is installed (`tqdm=None`, the default), else by the small text
    bar below (`tqdm=False` asks for it). It redraws at most every `interval` seconds, and
    only on a terminal: in a log file or a captured stream it writes nothing (the examples
    print per-epoch lines)."""

    def __init__(self, iterable, total: int | None = None, desc: str = "", interval: float = 0.1,
                 enabled: bool = True, stream=None, tqdm: bool | None = None):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc = desc
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.count = 0
        self.postfix = ""
        self.start = self.last = time.perf_counter()
        self._tqdm = None
        if tqdm is not False and self.enabled:
            try:
                from tqdm import tqdm as tqdm_bar
            except ImportError:
                if tqdm:
                    raise ImportError("Progress(tqdm=True) needs tqdm: pip install tqdm") from None
            else:
                self._tqdm = tqdm_bar(iterable, total=self.total, desc=desc, file=self.stream,
                                      mininterval=interval, dynamic_ncols=True)

    def __iter__(self):
        if self._tqdm is not None:
            with self._tqdm:
                yield from self._tqdm
            return
        try:
            for item in self.iterable:
                yield item
                self.count += 1
                now = time.perf_counter()
                if now - self.last >= self.interval:
                    self.last = now
                    self._draw(now)
        finally:
            self.close()

    def set_postfix(self, **metrics) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in metrics.items()},
                                   refresh=False)
            return
        self.postfix = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())

    def _draw(self, now: float) -> None:
        if not self.enabled:
            return
        elapsed = now - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        if self.total:
            done = self.count / self.total
            bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
            eta = (self.total - self.count) / rate if rate > 0 else math.inf
            text = f"{self.desc} [{bar}] {self.count}/{self.total} {elapsed:.0f}s<{eta:.0f}s {rate:.1f} it/s"
        else:
            text = f"{self.desc} {self.count} {elapsed:.0f}s {rate:.1f} it/s"
        self.stream.write(f"\r{text}  {self.postfix}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            return
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


# ----- live view -----

def view_arguments(p: argparse.ArgumentParser) -> None:
    """--live and --snapshot, for the examples that can show smolgrad.viz.LiveView."""
    p.add_argument("--live", action="store_true",
                   help="watch training in a window (smolgrad.viz.LiveView: needs glfw, rendercanvas and a display)")
    p.add_argument("--snapshot", default=None, metavar="PATH",
                   help="at the end, render the live view's panels into this PNG (works without a display)")


def open_view(args, title: str):
    """The LiveView that --live or --snapshot ask for, else None. Without a window (no glfw,
    no display) it says why on stderr and training goes on."""
    if not (args.live or args.snapshot):
        return None
    try:
        from smolgrad.viz import LiveView

        return LiveView(title=title, live=args.live)
    except Exception as e:  # e.g. no WebGPU adapter to draw with
        print(f"--live/--snapshot: no view ({type(e).__name__}: {e}); training goes on", file=sys.stderr)
        return None


def finish_view(view, args) -> None:
    """Write the --snapshot PNG, then keep the window's last frame up until it is closed."""
    if view is None:
        return
    if args.snapshot:
        print(f"live view snapshot: {view.snapshot(args.snapshot)}")
    if view.is_live:
        print("close the live view window to exit", flush=True)
        view.wait_closed()


def show_mnist_model(view, model, batch: dict) -> None:
    """MNIST panels: the first layer's weights as images (28x28 per unit, or the conv
    kernels), its gradient's histogram, the output layer as a heatmap, and the latest batch
    with the predicted labels (`batch` holds x, pred and y, updated by train_epoch)."""
    for name in ("loss", "lr", "samples_per_s"):  # the curves first
        view.curve(name)
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    first, last = matrices[0], matrices[-1]
    if first.ndim == 2 and first.shape[1] == 784:
        view.images("first layer weights", lambda: first[:16], image_shape=(28, 28))
    elif first.ndim == 4:
        view.images("first conv kernels", lambda: first[:16, 0])
    view.histogram("first layer gradient", lambda: first.grad)
    view.heatmap("output layer weights", last)
    image_shape = (28, 28) if first.ndim == 2 else None
    view.images("batch: predicted labels", lambda: batch.get("x"), labels=lambda: batch.get("pred"),
                targets=lambda: batch.get("y"), image_shape=image_shape, max_images=24)


# ----- models -----

class MLP(nn.Module):
    """A multi-layer perceptron in micrograd's notation: MLP(2, [4, 4, 1]) is
    Linear(2, 4), act, Linear(4, 4), act, Linear(4, 1); the output has no activation."""

    def __init__(self, n_in: int, n_outs: list[int], activation=nn.ReLU):
        super().__init__()
        sizes = [n_in, *n_outs]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(n_outs) - 1:
                layers.append(activation())
        self.net = nn.Sequential(*layers)

    def forward(self, x: sg.Tensor) -> sg.Tensor:
        return self.net(x)


# ----- MNIST -----

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist_arguments(p: argparse.ArgumentParser, epochs: int, checkpoint: str, shift: int = 0) -> None:
    """The options both MNIST examples share."""
    p.add_argument("--epochs", type=int, default=epochs,
                   help="epochs to train for, in total when resuming; the learning rate decays over them "
                        "(default: %(default)s)")
    p.add_argument("--data", default=None,
                   help="folder with mnist/*.gz (default: $SMOLGRAD_DATA, else ~/.cache/smolgrad, downloading "
                        "the files there when they are missing)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's initial learning rate (default: %(default)s)")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on only the first N training images (for quick runs)")
    p.add_argument("--test-size", type=int, default=None, help="evaluate on only the first N test images")
    p.add_argument("--checkpoint", default=checkpoint, help="where to save a checkpoint after every epoch (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--shift", type=int, default=shift,
                   help="augmentation: shift each training batch by up to this many pixels (default: %(default)s)")
    view_arguments(p)


def mnist_datasets(root, flatten: bool, train_size: int | None = None, test_size: int | None = None):
    """Train and test TensorDatasets of normalised float32 images (N x 784 when
    `flatten`, else N x 1 x 28 x 28) and int64 labels."""
    out = []
    for train, size in ((True, train_size), (False, test_size)):
        ds = MNIST(root, train=train)
        images = ds.data[:size].astype(np.float32) / 255.0
        images = (images - MNIST_MEAN) / MNIST_STD
        images = images.reshape(len(images), -1) if flatten else images[:, None]
        out.append(TensorDataset(images, ds.targets[:size]))
    return out


def epoch_loader(dataset, batch_size: int, seed: int, epoch: int, device, shift: int = 0,
                 rank: int = 0, world: int = 1) -> DataLoader:
    """A shuffled loader whose order (and augmentation) depends only on (seed, epoch), so a
    resumed run sees the same batches as an uninterrupted one. With `shift`, each batch's
    images move by up to that many pixels in each direction (light augmentation). With
    several ranks, each gets its part of every batch of `batch_size` (see rank_part)."""
    order = np.random.default_rng((seed, epoch))
    collate = None
    if shift:
        moves = np.random.default_rng((seed, epoch, 1))

        def collate(samples):
            samples = rank_part(samples, rank, world)
            images = shifted(np.stack([image for image, _ in samples]), shift, moves)
            labels = np.array([int(label) for _, label in samples], dtype=np.int64)
            return sg.tensor(images, device=device), sg.tensor(labels, device=device)

    elif world > 1:
        def collate(samples):
            return default_collate(rank_part(samples, rank, world), device)

    too_small = 0 < len(dataset) % batch_size < world  # a last batch that some rank would get nothing of
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=order, collate_fn=collate, device=device,
                      drop_last=too_small)


def shifted(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """The batch of normalised MNIST images (N x 784 or N x 1 x 28 x 28) moved by one random
    (dx, dy) in [-max_shift, max_shift]; the uncovered border is background."""
    flat = images.ndim == 2
    square = images.reshape(len(images), 28, 28)
    out = np.full_like(square, (0.0 - MNIST_MEAN) / MNIST_STD)
    dx, dy = rng.integers(-max_shift, max_shift + 1, size=2)
    out[:, max(dy, 0) : 28 + min(dy, 0), max(dx, 0) : 28 + min(dx, 0)] = square[
        :, max(-dy, 0) : 28 + min(-dy, 0), max(-dx, 0) : 28 + min(-dx, 0)
    ]
    return out.reshape(images.shape) if not flat else out.reshape(len(images), -1)


def classifier_step(model, optimizer, compiled: bool = True):
    """The training step of a classifier: step(x, y) -> (loss, predictions, number correct),
    captured with smolgrad.compile unless `compiled` is False."""

    def step(x, y):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        pred = logits.detach().argmax(dim=1)
        return loss, pred, (pred == y).sum()

    return sg.compile(step) if compiled else step


def train_epoch(model, optimizer, train_step, loader, desc: str, progress: bool = True, view=None, step: int = 0,
                batch: dict | None = None) -> tuple[float, float]:
    """One pass over `loader` with `train_step` (see classifier_step); returns (mean loss,
    accuracy). With a LiveView `view`, each step (counted on from `step`) updates its curves
    and `batch` (see show_mnist_model)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = Progress(loader, desc=desc, enabled=progress)
    start = time.perf_counter()
    for x, y in bar:
        loss, pred, hits = train_step(x, y)
        total_loss += loss.item() * len(y)
        correct += hits.item()
        seen += len(y)
        bar.set_postfix(loss=total_loss / seen, acc=f"{100 * correct / seen:.2f}%")
        if view is not None:
            step += 1
            if batch is not None:
                batch.update(x=x, pred=pred, y=y)
            view.update(step=step, loss=loss.item(), lr=optimizer.param_groups[0]["lr"],
                        samples_per_s=seen / (time.perf_counter() - start))
    total_loss, correct, seen = sum_over_ranks(total_loss, correct, seen)
    return total_loss / seen, correct / seen


def evaluate(model, dataset, device, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on `dataset`."""
    model.eval()
    total_loss, correct = 0.0, 0
    with sg.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size, device=device):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y, reduction="sum")
            hits = (logits.argmax(dim=1) == y).sum()
            sg.realize(loss, hits)
            total_loss += loss.item()
            correct += hits.item()
    return total_loss / len(dataset), correct / len(dataset)


def fit_mnist(model, args, name: str, flatten: bool, default_epochs: int, target: float) -> int:
    """Train `model` with Adam and a cosine learning-rate decay over args.epochs, print
    per-epoch metrics, save a checkpoint after every epoch, and (with args.resume)
    continue from one. `flatten`: the model takes 784-vectors, not 1x28x28 images.
    Returns the exit status: 1 when a full run (all the data,
    default_epochs or more) ends below the `target` test accuracy."""
    rank, world = distributed()
    train, test = mnist_datasets(args.data, flatten=flatten, train_size=args.train_size, test_size=args.test_size)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    device = next(iter(model.parameters())).device
    start = load_checkpoint(args.checkpoint, model, optimizer, device) if args.resume else 0
    net = data_parallel(model)  # the bare model is evaluated and saved: checkpoints do not depend on the rank count
    # Resuming at epoch `start` is torch's idiom: last_epoch=start-1 (the loaded
    # optimizer state supplies each group's initial_lr).
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, last_epoch=start - 1)
    print(f"{name} on '{device}': {len(train)} training and {len(test)} test images, "
          f"{sum(p.numel() for p in model.parameters())} parameters" + (f", resuming after epoch {start}" if start else "")
          + (f", {world} ranks with {args.batch_size // world} images each per batch" if world > 1 else ""))

    # captured with smolgrad.compile, unless data-parallel: its gradient all-reduce runs in
    # backward hooks on the host, which a replayed step would skip
    train_step = classifier_step(net, optimizer, compiled=not args.no_compile and world == 1)
    view, batch = open_view(args, name) if rank == 0 else None, {}
    if view is not None:
        show_mnist_model(view, model, batch)
    test_acc = None
    for epoch in range(start + 1, args.epochs + 1):
        sg.manual_seed(args.seed * 1000 + epoch)  # any random draw depends on (seed, epoch) only: resuming is exact
        t0 = time.perf_counter()
        loader = epoch_loader(train, args.batch_size, args.seed, epoch, device, args.shift, rank, world)
        step = (epoch - 1) * len(loader)
        train_loss, train_acc = train_epoch(model, optimizer, train_step, loader, f"epoch {epoch}",
                                            not args.no_progress, view, step, batch)
        seconds = time.perf_counter() - t0
        scheduler.step()
        if rank != 0:  # rank 0 evaluates and writes the checkpoint
            continue
        test_loss, test_acc = evaluate(model, test, device)
        if view is not None:
            view.update(step=step + len(loader), val_loss=test_loss)
        save_checkpoint(args.checkpoint, model, optimizer, epoch)
        print(f"epoch {epoch:2d}/{args.epochs}  train loss {train_loss:.4f}  acc {100 * train_acc:.2f}%  |  "
              f"test loss {test_loss:.4f}  acc {100 * test_acc:.2f}%  |  {seconds:.1f} s", flush=True)

    if rank != 0:
        return 0
    if test_acc is None:
        print(f"nothing to do: the checkpoint already has {start} epochs (ask for more with --epochs)")
        finish_view(view, args)
        return 0
    print(f"test accuracy {100 * test_acc:.2f}%")
    finish_view(view, args)
    full_run = args.train_size is None and args.test_size is None and args.epochs >= default_epochs
    if full_run and test_acc < target:
        print(f"below the target of {100 * target:.1f}% for a full run")
        return 1
    return 0


def save_checkpoint(path: str | Path, model, optimizer, epoch: int) -> None:
    """Model and optimizer state and the number of finished epochs, written atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)


def load_checkpoint(path: str | Path, model, optimizer, device) -> int:
    """Restore model and optimizer from `path`; returns the number of finished epochs."""
    if not Path(path).is_file():
        raise SystemExit(f"--resume: no checkpoint at {path}; run without --resume first, or pass --checkpoint PATH")
    state = sg.load(path, device=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"])
