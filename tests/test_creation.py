"""Creation functions and Tensor basics: dtypes, properties, repr, conversions."""

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close


def test_tensor_infers_dtypes_like_torch(device):
    assert sg.tensor([1.0, 2.0], device=device).dtype == sg.float32
    assert sg.tensor([1, 2], device=device).dtype == sg.int64
    assert sg.tensor([True, False], device=device).dtype == sg.bool
    assert sg.tensor(np.array([1, 2], dtype=np.int32), device=device).dtype == sg.int32
    assert sg.tensor(np.array([1.0], dtype=np.float32), device=device).dtype == sg.float32


def test_tensor_with_explicit_dtype(device):
    t = sg.tensor([1, 2], dtype=sg.float32, device=device)
    assert t.dtype == sg.float32 and t.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: sg.zeros(2, 3, device=d), np.zeros((2, 3), np.float32)),
        (lambda d: sg.ones((2, 3), device=d), np.ones((2, 3), np.float32)),
        (lambda d: sg.full((2, 2), 7, device=d), np.full((2, 2), 7, np.int64)),
        (lambda d: sg.full((2,), 1.5, device=d), np.full((2,), 1.5, np.float32)),
        (lambda d: sg.arange(5, device=d), np.arange(5)),
        (lambda d: sg.arange(1, 2, 0.25, device=d), np.arange(1, 2, 0.25, dtype=np.float32)),
        (lambda d: sg.arange(10, 0, -3, device=d), np.arange(10, 0, -3)),
        (lambda d: sg.eye(3, device=d), np.eye(3, dtype=np.float32)),
        (lambda d: sg.eye(2, 4, device=d), np.eye(2, 4, dtype=np.float32)),
        (lambda d: sg.zeros(0, 3, device=d), np.zeros((0, 3), np.float32)),
    ],
)
def test_creation_functions(device, make, expected):
    assert_close(make(device), expected)


def test_like_functions_copy_shape_dtype_and_device(device):
    x = sg.tensor([[1, 2, 3]], device=device)
    for fn in (sg.zeros_like, sg.ones_like):
        y = fn(x)
        assert (y.shape, y.dtype, y.device) == (x.shape, x.dtype, x.device)
    assert sg.full_like(x, 4).tolist() == [[4, 4, 4]]
    f = sg.tensor([[1.0, 2.0]], device=device)
    assert sg.rand_like(f).shape == (1, 2) and sg.randn_like(f).dtype == sg.float32


def test_manual_seed_makes_random_reproducible_across_devices(device):
    sg.manual_seed(42)
    a = sg.randn(4, 5, device=device).numpy()
    sg.manual_seed(42)
    b = sg.randn(4, 5, device="numpy").numpy()
    # the same Philox bits on both devices; Box-Muller's log and cos may round differently
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    sg.manual_seed(42)
    u = sg.rand(4, 5, device=device).numpy()
    sg.manual_seed(42)
    np.testing.assert_array_equal(u, sg.rand(4, 5, device="numpy").numpy())  # uniforms are exact


def test_random_value_ranges(device):
    r = sg.rand(1000, device=device).numpy()
    assert r.min() >= 0 and r.max() < 1
    n = sg.randn(10000, device=device).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05
    i = sg.randint(3, 7, (1000,), device=device)
    assert i.dtype == sg.int64 and set(i.tolist()) == {3, 4, 5, 6}
    assert set(sg.randint(2, (100,), device=device).tolist()) == {0, 1}


def test_properties(device):
    x = sg.zeros(2, 3, 4, device=device)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(-1) == 4
    assert x.dim() == 3 and x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert x.device == device and x.dtype == sg.float32


def test_item_tolist_numpy(device):
    x = sg.tensor([[1.5, 2.0]], device=device)
    assert x.tolist() == [[1.5, 2.0]]
    assert x[0, 1].item() == 2.0 and isinstance(x[0, 1].item(), float)
    assert sg.tensor([3], device=device).item() == 3
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(RuntimeError, match="2 elements"):
        x.item()


def test_numpy_of_tensor_requiring_grad_raises():
    x = sg.ones(2, device="numpy", requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()


def test_repr_is_readable(device):
    x = sg.tensor([[1.0, 2.5], [3.0, 4.0]], device=device, requires_grad=True)
    text = repr(x)
    assert text.startswith("tensor([[1.0, 2.5],") and "requires_grad=True" in text
    assert ("device='webgpu'" in text) == (device == "webgpu")
    assert "grad_fn=<MulBackward>" in repr(x * 2)
    assert repr(sg.tensor([1, 2], device=device)).startswith("tensor([1, 2]")
    assert "dtype=smolgrad.int32" in repr(sg.tensor([1], dtype=sg.int32, device=device))


def test_type_conversions(device):
    x = sg.tensor([1.7, -2.2, 0.0], device=device)
    assert x.long().tolist() == [1, -2, 0]
    assert x.int().dtype == sg.int32
    assert x.bool().tolist() == [True, True, False]
    assert sg.tensor([1, 0], device=device).float().tolist() == [1.0, 0.0]
    assert x.to(sg.int64).dtype == sg.int64


def test_scalar_conversions(device):
    t = sg.tensor([2.5], device=device)
    assert float(t) == 2.5 and int(t) == 2 and bool(t)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(sg.ones(2, device=device))


def test_unsupported_dtype_raises():
    with pytest.raises(TypeError, match="unsupported dtype"):
        sg.tensor(["a", "b"])


def test_integer_values_past_2_31_are_refused_on_webgpu(webgpu):
    with pytest.raises((OverflowError, ValueError)):
        sg.tensor(np.array([2**40]), device=webgpu)
