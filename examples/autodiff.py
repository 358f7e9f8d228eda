"""Forward and reverse mode on the same functions, a Hessian, and Newton's method.

1. Jacobians by reverse mode (one backward pass per output) and forward mode (one forward
   pass per input) give the same numbers; reverse mode is cheaper for wide functions
   (many inputs, few outputs: f: R^n -> R^2) and forward mode for tall ones (R^2 -> R^n).
2. The Hessian of a scalar function by forward over reverse (func.hessian) and by reverse
   over reverse (jacrev(jacrev)).
3. Logistic regression fitted two ways: the course's plain gradient descent with in-place
   updates (`x -= lr * x.grad; x.grad.zero_()` under no_grad), and Newton's method with the
   exact Hessian, which converges in a handful of steps.

    python examples/autodiff.py [--device numpy|webgpu] [--n 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import smolgrad as sg
from smolgrad import func


def timed(fn, repeat: int = 3) -> tuple[float, sg.Tensor]:
    """Best wall time of fn() (with its result computed) over `repeat` runs."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        sg.realize(out)
        best = min(best, time.perf_counter() - start)
    return best, out


def jacobians(n: int, device: str) -> None:
    print(f"1. Jacobians, reverse mode (jacrev) against forward mode (jacfwd), n = {n}")
    sg.manual_seed(0)
    a = sg.randn(2, n, device=device)
    wide = lambda x: (a @ x).tanh()  # R^n -> R^2
    tall = lambda x: (a.T @ x).sin()  # R^2 -> R^n
    for name, f, x in (("wide R^n -> R^2", wide, sg.randn(n, device=device)), ("tall R^2 -> R^n", tall, sg.randn(2, device=device))):
        t_rev, j_rev = timed(lambda: func.jacrev(f)(x))
        t_fwd, j_fwd = timed(lambda: func.jacfwd(f)(x))
        diff = np.abs(j_rev.numpy() - j_fwd.numpy()).max()
        cheaper = "reverse" if t_rev < t_fwd else "forward"
        print(
            f"   {name:16s} Jacobian {tuple(j_rev.shape)}: reverse {t_rev * 1e3:7.1f} ms, forward {t_fwd * 1e3:7.1f} ms "
            f"(max difference {diff:.1e}; {cheaper} mode is cheaper)"
        )


def hessians(device: str) -> None:
    print("2. The Hessian of f(x) = sum(tanh(x) * x^2) at x = (0.3, -0.7, 1.1)")
    x = sg.tensor([0.3, -0.7, 1.1], device=device)
    f = lambda x: (x.tanh() * x * x).sum()
    h_fr = func.hessian(f)(x).numpy()
    h_rr = func.jacrev(func.jacrev(f))(x).numpy()
    print("   forward over reverse:", np.array2string(np.diag(h_fr), precision=5), "on the diagonal")
    print(f"   reverse over reverse agrees to {np.abs(h_fr - h_rr).max():.1e}")


def logistic_data(device: str, n: int = 200):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    w_true = np.array([2.0, -1.0, 0.5], dtype=np.float32)
    y = (x @ w_true + 0.3 * rng.standard_normal(n) > 0).astype(np.float32)
    return sg.tensor(x, device=device), sg.tensor(y, device=device)


def loss_fn(w: sg.Tensor, x: sg.Tensor, y: sg.Tensor) -> sg.Tensor:
    """Mean logistic loss with a small L2 term (so the minimum is unique)."""
    return sg.nn.functional.binary_cross_entropy_with_logits(x @ w, y) + 0.01 * (w * w).sum()


def regression(device: str) -> None:
    x, y = logistic_data(device)
    print("3. Logistic regression: gradient descent with in-place updates, then Newton's method")
    w = sg.zeros(3, device=device, requires_grad=True)
    lr = 0.5
    for step in range(1, 201):
        loss = loss_fn(w, x, y)
        loss.backward()
        with sg.no_grad():
            w -= lr * w.grad  # in place: w stays the same leaf tensor, with its .grad
        w.grad.zero_()
        if step in (1, 10, 50, 200):
            print(f"   gradient descent step {step:3d}: loss {loss.item():.6f}")
    w_newton = sg.zeros(3, device=device)
    for step in range(1, 7):
        g = func.grad(loss_fn)(w_newton, x, y)
        h = func.hessian(loss_fn)(w_newton, x, y)
        step_np = np.linalg.solve(h.numpy().astype(np.float64), g.numpy().astype(np.float64))
        w_newton = w_newton - sg.tensor(step_np.astype(np.float32), device=device)
        print(f"   Newton step {step}: loss {loss_fn(w_newton, x, y).item():.6f}, |grad| {np.linalg.norm(g.numpy()):.2e}")
    print("   weights: gradient descent", np.round(w.detach().numpy(), 4), " Newton", np.round(w_newton.numpy(), 4))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="numpy or webgpu (default: smolgrad's choice)")
    parser.add_argument("--n", type=int, default=64, help="the wide/tall dimension of the Jacobian timing")
    args = parser.parse_args(argv)
    device = sg.default_device() if args.device is None else args.device
    jacobians(args.n, device)
    hessians(device)
    regression(device)


if __name__ == "__main__":
    main()
