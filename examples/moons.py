"""Train an MLP(2, [16, 16, 1]) on scikit-learn-style two moons until it classifies every
training point right, and draw its decision boundary (when matplotlib is installed).

    python examples/moons.py                      # writes moons.png
    python examples/moons.py --device webgpu --plot ''   # no picture

Exits with status 1 unless the train accuracy reaches 100%."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import smolgrad as sg
from smolgrad import nn, optim
from smolgrad.data import make_moons

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py, also under PYTHONSAFEPATH=1
from common import MLP, Progress, parser


def plot_decision_boundary(model, X: np.ndarray, y: np.ndarray, path: str, device) -> bool:
    """Save a picture of the model's decision regions with the points; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no picture (pip install matplotlib)")
        return False
    (x0, y0), (x1, y1) = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    with sg.no_grad():
        scores = model(sg.tensor(grid, device=device)).numpy().reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(gx, gy, scores > 0, levels=1, cmap="coolwarm", alpha=0.3)
    ax.contour(gx, gy, scores, levels=[0.0], colors="k", linewidths=1)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=12, edgecolors="k", linewidths=0.3)
    ax.set_title("MLP(2, [16, 16, 1]) on two moons")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--samples", type=int, default=200, help="number of points (default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.1, help="standard deviation of the noise added to the points (default: %(default)s)")
    p.add_argument("--steps", type=int, default=500, help="most training steps (full batch: one step is one epoch) (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--log-every", type=int, default=50, help="print the metrics every N steps (default: %(default)s)")
    p.add_argument("--plot", default="moons.png", help="where to save the decision boundary ('' for none) (default: %(default)s)")
    args = p.parse_args(argv)

    sg.manual_seed(args.seed)
    X, y = make_moons(args.samples, noise=args.noise, random_state=args.seed)
    inputs = sg.tensor(X.astype(np.float32), device=args.device)
    targets = sg.tensor(y.astype(np.float32).reshape(-1, 1), device=args.device)
    model = MLP(2, [16, 16, 1], activation=nn.ReLU).to(inputs.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    print(f"training MLP(2, [16, 16, 1]) on {args.samples} moons points on device '{inputs.device}'")

    acc = 0.0
    bar = Progress(range(1, args.steps + 1), desc="moons", enabled=not args.no_progress)
    for step in bar:
        logits = model(inputs)
        loss = loss_fn(logits, targets)
        acc = ((logits.detach() > 0).float() == targets).float().mean().item()
        bar.set_postfix(loss=loss.item(), acc=f"{100 * acc:.1f}%")
        if step % args.log_every == 0 or step == 1 or acc == 1.0:
            print(f"step {step:4d}  loss {loss.item():.4f}  train accuracy {100 * acc:.1f}%")
        if acc == 1.0:  # stop with the model that was just measured
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    if args.plot and plot_decision_boundary(model, X, y, args.plot, inputs.device):
        print(f"decision boundary saved to {args.plot}")
    if acc == 1.0:
        print(f"100% train accuracy after {step} steps")
        return 0
    print(f"train accuracy {100 * acc:.1f}% after {args.steps} steps, short of 100%")
    return 1


if __name__ == "__main__":
    sys.exit(main())
