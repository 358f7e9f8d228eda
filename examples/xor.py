"""Train a 2-8-1 MLP on XOR with raw smolgrad tensor ops and a hand-written SGD loop.

    python examples/xor.py                    # the default device
    python examples/xor.py --device webgpu    # run the shaders (lavapipe works too)

Exits with status 1 unless all four XOR cases are predicted right."""

from __future__ import annotations

import argparse
import sys
import time

import smolgrad as sg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a small MLP (2 -> 8 tanh -> 1 sigmoid) on XOR.")
    parser.add_argument("--device", default=None,
                        help="'webgpu' or 'numpy' (alias 'cpu'); default: smolgrad's default device")
    parser.add_argument("--steps", type=int, default=500, help="SGD steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=8, help="hidden units (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--log-every", type=int, default=100, help="print the loss every N steps (default: %(default)s)")
    return parser.parse_args(argv)


def init_params(hidden: int, device: str | None) -> list[sg.Tensor]:
    """Weights scaled like Xavier init for tanh, biases at zero; all require grad."""
    w1 = sg.randn(2, hidden, device=device) * (1.0 / 2**0.5)
    b1 = sg.zeros(hidden, device=device)
    w2 = sg.randn(hidden, 1, device=device) * (1.0 / hidden**0.5)
    b2 = sg.zeros(1, device=device)
    params = [p.detach().requires_grad_() for p in (w1, b1, w2, b2)]
    sg.realize(*params)
    return params


def forward(params: list[sg.Tensor], x: sg.Tensor) -> sg.Tensor:
    """The MLP's output probabilities, shape (N, 1)."""
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    return (h @ w2 + b2).sigmoid()


def bce(p: sg.Tensor, y: sg.Tensor, eps: float = 1e-7) -> sg.Tensor:
    """Mean binary cross-entropy of probabilities p against 0/1 targets y."""
    return -(y * (p + eps).log() + (1 - y) * (1 - p + eps).log()).mean()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sg.manual_seed(args.seed)

    x = sg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=args.device)
    y = sg.tensor([[0.0], [1.0], [1.0], [0.0]], device=args.device)
    params = init_params(args.hidden, args.device)
    print(f"training on device '{x.device}' for {args.steps} steps, lr {args.lr}")

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = bce(forward(params, x), y)
        loss.backward()
        # No in-place ops: each step rebinds the parameters to new leaf tensors, and
        # realizes them so that no graph grows across steps.
        params = [(p - args.lr * p.grad).detach().requires_grad_() for p in params]
        sg.realize(*params)
        if step % args.log_every == 0 or step == 1 or step == args.steps:
            print(f"step {step:5d}  loss {loss.item():.5f}")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed:.2f} s ({1000 * elapsed / args.steps:.2f} ms/step)")

    with sg.no_grad():
        probs = forward(params, x).numpy().reshape(-1)
    targets = y.numpy().reshape(-1)
    inputs = x.numpy()
    correct = 0
    for (a, b), p, t in zip(inputs, probs, targets):
        ok = (p > 0.5) == (t > 0.5)
        correct += bool(ok)
        print(f"  {int(a)} xor {int(b)} = {int(t)}   predicted {p:.4f}   {'ok' if ok else 'WRONG'}")
    if correct == 4:
        print("all four XOR cases are right")
        return 0
    print(f"only {correct} of the four XOR cases are right")
    return 1


if __name__ == "__main__":
    sys.exit(main())
