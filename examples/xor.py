"""Train an MLP(2, [4, 4, 1]) (tanh hidden layers) on XOR with Adam.

    python examples/xor.py                    # the default device
    python examples/xor.py --device webgpu    # run the shaders (lavapipe works too)

Each step is one epoch over the four cases. Exits with status 1 unless all four XOR
cases are predicted right."""

from __future__ import annotations

import sys
from pathlib import Path

import smolgrad as sg
from smolgrad import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common.py, also under PYTHONSAFEPATH=1
from common import MLP, Progress, parser


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=500, help="training steps (full batch: one step is one epoch) (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--log-every", type=int, default=100, help="print the metrics every N steps (default: %(default)s)")
    args = p.parse_args(argv)

    sg.manual_seed(args.seed)
    x = sg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=args.device)
    y = sg.tensor([[0.0], [1.0], [1.0], [0.0]], device=args.device)
    model = MLP(2, [4, 4, 1], activation=nn.Tanh).to(x.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    print(f"training {model.__class__.__name__}(2, [4, 4, 1]) on XOR on device '{x.device}' for {args.steps} steps")

    bar = Progress(range(1, args.steps + 1), desc="xor", enabled=not args.no_progress)
    for step in bar:
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.log_every == 0 or step == 1 or step == args.steps:
            acc = ((logits.detach() > 0).float() == y).float().mean().item()
            bar.set_postfix(loss=loss.item())
            print(f"step {step:5d}  loss {loss.item():.5f}  accuracy {100 * acc:.0f}%")

    with sg.no_grad():
        probs = model(x).sigmoid().numpy().reshape(-1)
    correct = 0
    for (a, b), prob, target in zip(x.numpy(), probs, y.numpy().reshape(-1)):
        ok = (prob > 0.5) == (target > 0.5)
        correct += bool(ok)
        print(f"  {int(a)} xor {int(b)} = {int(target)}   predicted {prob:.4f}   {'ok' if ok else 'WRONG'}")
    if correct == 4:
        print("all four XOR cases are right")
        return 0
    print(f"only {correct} of the four XOR cases are right")
    return 1


if __name__ == "__main__":
    sys.exit(main())
