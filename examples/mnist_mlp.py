"""Train a 784-128-64-32-10 MLP on MNIST with Adam, a cosine learning-rate decay, and
light augmentation (each batch shifted by up to one pixel).

    python examples/mnist_mlp.py                      # 10 epochs, >= 98.0% test accuracy
    python examples/mnist_mlp.py --epochs 12 --resume # continue from the last checkpoint
    python examples/mnist_mlp.py --train-size 6400 --epochs 1   # a quick run
    python examples/mnist_mlp.py --live --snapshot mlp.png      # watch it train; a PNG of the view at the end

The data comes from --data, else $SMOLGRAD_DATA, else ~/.cache/smolgrad (downloaded
there the first time). A checkpoint is saved after every epoch."""

from __future__ import annotations

import sys
from pathlib import Path

import smolgrad as sg
from smolgrad import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py, also under PYTHONSAFEPATH=1
from common import MLP, fit_mnist, mnist_arguments, parser

EPOCHS = 10
TARGET = 0.980  # the test accuracy a full run (all data, EPOCHS epochs) must reach


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    mnist_arguments(p, epochs=EPOCHS, checkpoint="checkpoints/mnist_mlp.safetensors", shift=1)
    args = p.parse_args(argv)
    sg.manual_seed(args.seed)
    model = MLP(784, [128, 64, 32, 10], activation=nn.ReLU).to(args.device)
    return fit_mnist(model, args, "MNIST MLP", flatten=True, default_epochs=EPOCHS, target=TARGET)


if __name__ == "__main__":
    sys.exit(main())
