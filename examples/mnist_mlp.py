"""Train a 784-128-64-32-10 MLP on MNIST with Adam.

    python examples/mnist_mlp.py                      # 10 epochs, >= 97.5% test accuracy
    python examples/mnist_mlp.py --epochs 12 --resume # continue from the last checkpoint
    python examples/mnist_mlp.py --train-size 6400 --epochs 1   # a quick run

The data comes from --data, else $SMOLGRAD_DATA, else ~/.cache/smolgrad (downloaded
there the first time). A checkpoint is saved after every epoch."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import smolgrad as sg
from smolgrad import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py, also under PYTHONSAFEPATH=1
from common import MLP, epoch_loader, evaluate, load_checkpoint, mnist_arguments, mnist_datasets, parser, save_checkpoint, train_epoch

EPOCHS = 10
TARGET = 0.975  # the test accuracy a full run (all data, EPOCHS epochs) must reach


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=EPOCHS, help="number of epochs to train for (in total, when resuming)")
    mnist_arguments(p, checkpoint="checkpoints/mnist_mlp.safetensors")
    args = p.parse_args(argv)

    sg.manual_seed(args.seed)
    train, test = mnist_datasets(args.data, flatten=True, train_size=args.train_size, test_size=args.test_size)
    model = MLP(784, [128, 64, 32, 10], activation=nn.ReLU).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    device = next(iter(model.parameters())).device
    start = load_checkpoint(args.checkpoint, model, optimizer, device) if args.resume else 0
    print(f"MNIST MLP on '{device}': {len(train)} training and {len(test)} test images, "
          f"{sum(p.numel() for p in model.parameters())} parameters" + (f", resuming after epoch {start}" if start else ""))

    test_acc = None
    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.perf_counter()
        loader = epoch_loader(train, args.batch_size, args.seed, epoch, device)
        train_loss, train_acc = train_epoch(model, optimizer, loader, f"epoch {epoch}", not args.no_progress)
        seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, test, device)
        save_checkpoint(args.checkpoint, model, optimizer, epoch)
        print(f"epoch {epoch:2d}/{args.epochs}  train loss {train_loss:.4f}  acc {100 * train_acc:.2f}%  |  "
              f"test loss {test_loss:.4f}  acc {100 * test_acc:.2f}%  |  {seconds:.1f} s", flush=True)

    if test_acc is None:
        print(f"nothing to do: the checkpoint already has {start} epochs (ask for more with --epochs)")
        return 0
    print(f"test accuracy {100 * test_acc:.2f}%")
    full_run = args.train_size is None and args.test_size is None and args.epochs >= EPOCHS
    if full_run and test_acc < TARGET:
        print(f"below the target of {100 * TARGET:.1f}% for a full run")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
