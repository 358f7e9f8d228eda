"""Train a small CNN (two conv + batch-norm + max-pool stages, two linear layers) on MNIST
with Adam, cosine decay and light augmentation (each batch shifted by up to one pixel).

    python examples/mnist_cnn.py                      # 3 epochs, >= 99.0% test accuracy
    python examples/mnist_cnn.py --epochs 4 --resume  # continue from the last checkpoint
    python examples/mnist_cnn.py --train-size 6400 --epochs 1   # a quick run
    python examples/mnist_cnn.py --live --snapshot cnn.png      # watch it train; a PNG of the view at the end

The data comes from --data, else $SMOLGRAD_DATA, else ~/.cache/smolgrad (downloaded
there the first time). A checkpoint is saved after every epoch."""

from __future__ import annotations

import sys
from pathlib import Path

import smolgrad as sg
from smolgrad import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py, also under PYTHONSAFEPATH=1
from common import fit_mnist, mnist_arguments, parser

EPOCHS = 3
TARGET = 0.990  # the test accuracy a full run (all data, EPOCHS epochs) must reach


class CNN(nn.Module):
    """1x28x28 -> conv 3x3 (16) -> batch norm -> relu -> pool 2 -> conv 3x3 (32) -> batch norm
    -> relu -> pool 2 -> flatten (32*7*7) -> linear 128 -> relu -> linear 10.

    The convs have no bias: the batch norm right after each would cancel it."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: sg.Tensor) -> sg.Tensor:
        return self.classifier(self.features(x))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    mnist_arguments(p, epochs=EPOCHS, checkpoint="checkpoints/mnist_cnn.safetensors", shift=1)
    args = p.parse_args(argv)
    sg.manual_seed(args.seed)
    model = CNN().to(args.device)
    return fit_mnist(model, args, "MNIST CNN", flatten=False, default_epochs=EPOCHS, target=TARGET)


if __name__ == "__main__":
    sys.exit(main())
