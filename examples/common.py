"""Helpers shared by the examples: command-line options, a progress bar, an MLP, and
MNIST data, evaluation and checkpoints. Only smolgrad's public API is used here."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg
from smolgrad import nn, optim
from smolgrad.data import MNIST, DataLoader, TensorDataset


# ----- command line -----

def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser that shows the example's docstring, with the options every
    example has: --device, --seed and --no-progress."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None,
                   help="'webgpu' or 'numpy' (alias 'cpu'); default: smolgrad's default device")
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and data order (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


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


def epoch_loader(dataset, batch_size: int, seed: int, epoch: int, device, shift: int = 0) -> DataLoader:
    """A shuffled loader whose order (and augmentation) depends only on (seed, epoch), so a
    resumed run sees the same batches as an uninterrupted one. With `shift`, each batch's
    images move by up to that many pixels in each direction (light augmentation)."""
    order = np.random.default_rng((seed, epoch))
    collate = None
    if shift:
        moves = np.random.default_rng((seed, epoch, 1))

        def collate(samples):
            images = shifted(np.stack([image for image, _ in samples]), shift, moves)
            labels = np.array([int(label) for _, label in samples], dtype=np.int64)
            return sg.tensor(images, device=device), sg.tensor(labels, device=device)

    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=order, collate_fn=collate, device=device)


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


def train_epoch(model, optimizer, loader, desc: str, progress: bool = True) -> tuple[float, float]:
    """One pass over `loader`; returns (mean loss, accuracy)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = Progress(loader, desc=desc, enabled=progress)
    for x, y in bar:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        hits = (logits.detach().argmax(dim=1) == y).sum()
        sg.realize(loss, hits)
        total_loss += loss.item() * len(y)
        correct += hits.item()
        seen += len(y)
        bar.set_postfix(loss=total_loss / seen, acc=f"{100 * correct / seen:.2f}%")
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
    train, test = mnist_datasets(args.data, flatten=flatten, train_size=args.train_size, test_size=args.test_size)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    device = next(iter(model.parameters())).device
    start = load_checkpoint(args.checkpoint, model, optimizer, device) if args.resume else 0
    # Resuming at epoch `start` is torch's idiom: last_epoch=start-1 (the loaded
    # optimizer state supplies each group's initial_lr).
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, last_epoch=start - 1)
    print(f"{name} on '{device}': {len(train)} training and {len(test)} test images, "
          f"{sum(p.numel() for p in model.parameters())} parameters" + (f", resuming after epoch {start}" if start else ""))

    test_acc = None
    for epoch in range(start + 1, args.epochs + 1):
        sg.manual_seed(args.seed * 1000 + epoch)  # any random draw depends on (seed, epoch) only: resuming is exact
        t0 = time.perf_counter()
        loader = epoch_loader(train, args.batch_size, args.seed, epoch, device, args.shift)
        train_loss, train_acc = train_epoch(model, optimizer, loader, f"epoch {epoch}", not args.no_progress)
        seconds = time.perf_counter() - t0
        scheduler.step()
        test_loss, test_acc = evaluate(model, test, device)
        save_checkpoint(args.checkpoint, model, optimizer, epoch)
        print(f"epoch {epoch:2d}/{args.epochs}  train loss {train_loss:.4f}  acc {100 * train_acc:.2f}%  |  "
              f"test loss {test_loss:.4f}  acc {100 * test_acc:.2f}%  |  {seconds:.1f} s", flush=True)

    if test_acc is None:
        print(f"nothing to do: the checkpoint already has {start} epochs (ask for more with --epochs)")
        return 0
    print(f"test accuracy {100 * test_acc:.2f}%")
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
