"""The WebGPU backend against the NumPy reference backend, at the LazyBuffer level.

Each test builds the same graph on "numpy" and "webgpu" and compares the results.
Skipped when no WebGPU adapter exists, unless SMOLGRAD_REQUIRE_WEBGPU=1.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from smolgrad import dtypes
from smolgrad.device import get_backend
from smolgrad.lazy import LazyBuffer
from smolgrad.ops import Op
from smolgrad.engine.kernel import Const, Kernel, Out


@pytest.fixture(scope="module")
def backend():
    try:
        return get_backend("webgpu")
    except Exception as e:  # no wgpu, no adapter, broken driver
        if os.environ.get("SMOLGRAD_REQUIRE_WEBGPU") == "1":
            pytest.fail(f"SMOLGRAD_REQUIRE_WEBGPU=1 but the webgpu backend is unavailable: {e}")
        pytest.skip(f"no WebGPU adapter: {e}")


DEVICES = ("numpy", "webgpu")
rng = np.random.default_rng(0)


def both(build, *arrays, dtype=dtypes.float32):
    """Run build(*LazyBuffers) on both devices; return (numpy result, webgpu result)."""
    results = []
    for dev in DEVICES:
        lbs = [LazyBuffer.load(a, dtype, dev) for a in arrays]
        results.append(build(*lbs).numpy())
    return results


def check(build, *arrays, dtype=dtypes.float32, rtol=1e-5, atol=1e-6):
    ref, got = both(build, *arrays, dtype=dtype)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)
    return got


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------- elementwise
UNARY_INPUTS = {
    Op.NEG: randn(5, 7),
    Op.EXP: randn(5, 7),
    Op.LOG: np.abs(randn(5, 7)) + 0.1,
    Op.SQRT: np.abs(randn(5, 7)),
    Op.RECIP: randn(5, 7),
    Op.SIN: randn(5, 7) * 3,
    Op.COS: randn(5, 7) * 3,
    Op.TANH: randn(5, 7) * 3,
    Op.SIGMOID: randn(5, 7) * 3,
    Op.ABS: randn(5, 7),
    Op.SIGN: randn(5, 7),
    Op.COPY: randn(5, 7),
    Op.FLOOR: randn(5, 7) * 3,
    Op.CEIL: randn(5, 7) * 3,
    Op.ROUND: np.concatenate([randn(5, 5) * 3, np.array([[0.5, 1.5, 2.5, -0.5, -2.5]] * 5, np.float32)], 1),
    Op.TRUNC: randn(5, 7) * 3,
    Op.ASIN: np.tanh(randn(5, 7)),
    Op.ACOS: np.tanh(randn(5, 7)),
    Op.ATAN: randn(5, 7) * 3,
    Op.LOG1P: np.abs(randn(5, 7)) - 0.5,
    Op.EXPM1: randn(5, 7),
}


@pytest.mark.parametrize("op", list(UNARY_INPUTS), ids=lambda o: o.name)
def test_unary_float(backend, op):
    check(lambda a: a.e(op), UNARY_INPUTS[op], rtol=2e-5, atol=2e-6)


BINARY_FLOAT = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.ATAN2, Op.MAX, Op.MIN, Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE]


@pytest.mark.parametrize("op", BINARY_FLOAT, ids=lambda o: o.name)
def test_binary_float(backend, op):
    a, b = randn(6, 5), randn(6, 5)
    b[0, :2] = a[0, :2]  # some equal elements for the comparisons
    got = check(lambda x, y: x.e(op, y), a, b)
    if op in (Op.LT, Op.EQ):
        assert got.dtype == np.bool_


def test_pow_numpy_semantics(backend):
    a = np.array([2.0, -2.0, -2.0, 0.0, 0.0, 0.0, -8.0, 1.5, -1.5, 1.0, 3.0], np.float32)
    b = np.array([3.0, 3.0, 2.0, 0.0, -1.0, 2.0, 1 / 3, -2.0, 0.5, np.nan, 0.5], np.float32)
    check(lambda x, y: x.e(Op.POW, y), a, b, rtol=1e-5)


def test_special_values(backend):
    x = np.array([0.0, -1.0, 1e4, -1e4, 100.0, -100.0, np.inf, -np.inf], np.float32)
    for op in (Op.LOG, Op.RECIP, Op.SIGMOID, Op.TANH, Op.EXP, Op.SQRT, Op.SIGN):
        check(lambda a: a.e(op), x, rtol=1e-5)
    zero = np.zeros(4, np.float32)
    check(lambda a, b: a.e(Op.DIV, b), np.array([1, -1, 0, 2], np.float32), zero)
    nan = np.array([np.nan, 1.0, np.nan, -np.inf], np.float32)
    other = np.array([1.0, np.nan, np.nan, 2.0], np.float32)
    check(lambda a, b: a.e(Op.MAX, b), nan, other)
    check(lambda a, b: a.e(Op.MIN, b), nan, other)
    check(lambda a: a.e(Op.SIGN), np.array([0.0, -0.0, np.nan, 3.0], np.float32))


def test_inf_nan_constants(backend):
    for value in (np.inf, -np.inf, np.nan, 1e-40, -0.0, 3.4e38):
        x = randn(3)
        check(lambda a: a.e(Op.ADD, LazyBuffer.const(value, (3,), dtypes.float32, a.device)), x)


def test_int_ops(backend):
    a = rng.integers(-50, 50, (4, 6)).astype(np.int32)
    b = rng.integers(1, 9, (4, 6)).astype(np.int32)
    for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAX, Op.MIN, Op.LT, Op.EQ, Op.GE):
        check(lambda x, y: x.e(op, y), a, b, dtype=dtypes.int32)
    for op in (Op.NEG, Op.ABS, Op.SIGN, Op.COPY):
        check(lambda x: x.e(op), a, dtype=dtypes.int32)
    e = rng.integers(0, 5, (4, 6)).astype(np.int32)
    check(lambda x, y: x.e(Op.POW, y), a % 7, e, dtype=dtypes.int32)


def test_int64_roundtrip_and_range(backend):
    a = np.array([-(2**31), 0, 2**31 - 1, 5], np.int64)
    got = check(lambda x: x.e(Op.ADD, x.const_like(0)), a, dtype=dtypes.int64)
    assert got.dtype == np.int64
    with pytest.raises((OverflowError, ValueError), match="32"):
        LazyBuffer.load(np.array([2**31], np.int64), dtypes.int64, "webgpu")
    with pytest.raises((OverflowError, ValueError)):
        LazyBuffer.load(np.array([-(2**31) - 1], np.int64), dtypes.int64, "webgpu")


def test_float64_is_refused(backend):
    with pytest.raises(TypeError, match="float64.*numpy"):
        LazyBuffer.load(np.zeros(3), dtypes.float64, "webgpu")
    x = LazyBuffer.load(np.zeros(3, np.float32), dtypes.float32, "webgpu")
    with pytest.raises(TypeError, match="float64.*numpy"):
        x.cast(dtypes.float64).numpy()


def test_casts(backend):
    f = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 100.0, np.nan], np.float32)
    check(lambda x: x.cast(dtypes.int32), f[:-1])
    check(lambda x: x.cast(dtypes.bool_), f)
    i = np.array([-3, 0, 7], np.int32)
    check(lambda x: x.cast(dtypes.float32), i, dtype=dtypes.int32)
    check(lambda x: x.cast(dtypes.bool_), i, dtype=dtypes.int32)
    check(lambda x: x.cast(dtypes.int64), i, dtype=dtypes.int32)
    bools = np.array([True, False, True])
    check(lambda x: x.cast(dtypes.float32), bools, dtype=dtypes.bool_)
    check(lambda x: x.cast(dtypes.int32), bools, dtype=dtypes.bool_)


def test_where_and_bool_outputs(backend):
    a, b = randn(4, 5), randn(4, 5)

    def build(x, y):
        return x.e(Op.LT, y).e(Op.WHERE, x, y)

    check(build, a, b)
    got = check(lambda x, y: x.e(Op.GT, y).e(Op.NE, x.e(Op.LE, y)), a, b)
    assert got.dtype == np.bool_
    c = np.array([[True, False], [False, True]])
    check(lambda x: x.e(Op.MUL, x.e(Op.EQ, x)), c, dtype=dtypes.bool_)


def test_const_kernel_and_expanded_const(backend):
    check(lambda a: a.e(Op.MUL, a.const_like(2.5)), randn(3, 4))
    ref, got = (LazyBuffer.const(7, (2, 3), dtypes.int32, d).contiguous().numpy() for d in DEVICES)
    np.testing.assert_array_equal(got, ref)
    # CONST as a kernel op fills its output
    for dtype, value in ((dtypes.float32, -1.5), (dtypes.int64, 3), (dtypes.bool_, True)):
        results = []
        for d in DEVICES:
            buffers = [None]
            get_backend(d).run([Kernel("elementwise", (Out(0, (4, 5), dtype),), (), (Const(value, dtype),))], buffers)
            results.append(get_backend(d).download(buffers[0], dtype, 0, 20))
        np.testing.assert_array_equal(results[1], results[0])
        assert results[1].dtype == results[0].dtype


def test_constant_operands_of_other_kernels(backend):
    ref, got = (LazyBuffer.const(2.0, (3, 70), dtypes.float32, d).r(Op.SUM, (1,)).numpy() for d in DEVICES)
    np.testing.assert_allclose(got, ref)
    check(lambda a: a.matmul(LazyBuffer.const(0.5, (4, 3), dtypes.float32, a.device)), randn(2, 4))
    check(lambda a: LazyBuffer.const(1.0, (2, 2), dtypes.float32, a.device).pad(((1, 0), (0, 1)), 0.0), randn(1))


# --------------------------------------------------------------------------- views
def test_views(backend):
    x = randn(4, 5, 6)
    check(lambda a: a.permute((2, 0, 1)).e(Op.NEG), x)
    check(lambda a: a.slice(((1, 4, 2), (0, 5, 1), (1, 6, 3))).e(Op.EXP), x)
    check(lambda a: a.flip((0, 2)).e(Op.ADD, a), x)
    check(lambda a: a.slice(((0, 1, 1), (0, 5, 1), (0, 6, 1))).expand((4, 5, 6)).e(Op.MUL, a), x)
    check(lambda a: a.permute((1, 0, 2)).flip((1,)).contiguous(), x)
    row = randn(1, 6)
    check(lambda a: a.expand((5, 6)).e(Op.SUB, a.expand((5, 6)).flip((1,))), row)


def test_same_buffer_twice(backend):
    x = randn(100)
    check(lambda a: a.e(Op.MUL, a), x)
    m = randn(8, 8)
    check(lambda a: a.e(Op.ADD, a.permute((1, 0))).e(Op.SUB, a.flip((0,))), m)
    check(lambda a: a.matmul(a), m, rtol=1e-4, atol=1e-5)


def test_zero_size(backend):
    check(lambda a: a.e(Op.EXP), np.zeros((0, 3), np.float32))
    check(lambda a: a.r(Op.SUM, (0,)), np.zeros((0, 3), np.float32))
    check(lambda a, b: a.matmul(b), np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32))


# --------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("op", [Op.SUM, Op.RMAX, Op.RMIN], ids=lambda o: o.name)
def test_reductions(backend, op):
    x = randn(6, 7, 8)
    for axes in ((0,), (1,), (2,), (0, 2), (0, 1, 2)):
        check(lambda a: a.r(op, axes), x, rtol=1e-5, atol=1e-5)
    check(lambda a: a.permute((2, 0, 1)).flip((1,)).r(op, (0, 2)), x, atol=1e-5)
    i = rng.integers(-100, 100, (5, 300)).astype(np.int32)
    check(lambda a: a.r(op, (1,)), i, dtype=dtypes.int32)
    check(lambda a: a.r(op, (0,)), i, dtype=dtypes.int32)


def test_reduce_long_and_many_axes(backend):
    big = randn(1 << 20)
    check(lambda a: a.r(Op.SUM, (0,)), big, rtol=1e-4, atol=1e-2)
    check(lambda a: a.r(Op.RMAX, (0,)), big)
    x = randn(6, 5, 40, 3, 20)
    check(lambda a: a.r(Op.SUM, (0, 2, 4)), x, rtol=1e-4, atol=1e-4)
    check(lambda a: a.r(Op.RMIN, (1, 3)), x)
    wide = randn(4, 5000)
    check(lambda a: a.r(Op.SUM, (1,)), wide, rtol=1e-4, atol=1e-3)


def test_reduce_nan_and_bool(backend):
    x = randn(3, 50)
    x[1, 7] = np.nan
    check(lambda a: a.r(Op.RMAX, (1,)), x)
    check(lambda a: a.r(Op.RMIN, (1,)), x)
    b = rng.random((4, 9)) > 0.7
    check(lambda a: a.r(Op.RMAX, (1,)), b, dtype=dtypes.bool_)
    check(lambda a: a.r(Op.SUM, (0,)), b, dtype=dtypes.bool_)


# --------------------------------------------------------------------------- matmul
def test_matmul_odd_sizes(backend):
    check(lambda a, b: a.matmul(b), randn(257, 130), randn(130, 67), rtol=1e-4, atol=1e-4)
    check(lambda a, b: a.matmul(b), randn(1, 1), randn(1, 1), rtol=1e-5)


def test_matmul_transposed_and_batched(backend):
    a, b = randn(40, 70), randn(50, 40)
    check(lambda x, y: x.permute((1, 0)).matmul(y.permute((1, 0))), a, b, rtol=1e-4, atol=1e-4)
    check(lambda x, y: x.matmul(y), randn(3, 2, 33, 20), randn(3, 2, 20, 65), rtol=1e-4, atol=1e-4)
    # broadcast batch: stride 0 on the batch dim of b
    w = randn(1, 20, 9)
    check(lambda x, y: x.matmul(y.expand((5, 20, 9))), randn(5, 17, 20), w, rtol=1e-4, atol=1e-4)
    i = rng.integers(-5, 5, (7, 9)).astype(np.int32)
    check(lambda x: x.matmul(x.permute((1, 0))), i, dtype=dtypes.int32)


# --------------------------------------------------------------------------- gather / scatter / pad
def test_gather(backend):
    src = randn(5, 6)
    index = rng.integers(0, 5, (3, 4)).astype(np.int64)  # smaller than src on dim 1
    ref, got = (
        LazyBuffer.load(src, dtypes.float32, d).gather(LazyBuffer.load(index, dtypes.int64, d), 0).numpy()
        for d in DEVICES
    )
    np.testing.assert_array_equal(got, ref)
    index1 = rng.integers(0, 6, (5, 2)).astype(np.int32)
    ref, got = (
        LazyBuffer.load(src, dtypes.float32, d).permute((1, 0)).permute((1, 0)).gather(
            LazyBuffer.load(index1, dtypes.int32, d), 1).numpy()
        for d in DEVICES
    )
    np.testing.assert_array_equal(got, ref)


def test_scatter_add(backend):
    src = randn(6, 4)
    index = rng.integers(0, 3, (6, 4)).astype(np.int64)
    for dim, shape in ((0, (3, 4)), (1, (6, 3))):
        ref, got = (
            LazyBuffer.load(src, dtypes.float32, d)
            .scatter_add(LazyBuffer.load(index, dtypes.int64, d), dim, shape)
            .numpy()
            for d in DEVICES
        )
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # many collisions (the compare-exchange loop), an index smaller than src, ints
    src = randn(2000, 3)
    index = rng.integers(0, 4, (1500, 2)).astype(np.int32)
    ref, got = (
        LazyBuffer.load(src, dtypes.float32, d).scatter_add(LazyBuffer.load(index, dtypes.int32, d), 0, (4, 3)).numpy()
        for d in DEVICES
    )
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    isrc = rng.integers(-9, 9, (50,)).astype(np.int32)
    index = rng.integers(0, 5, (50,)).astype(np.int32)
    ref, got = (
        LazyBuffer.load(isrc, dtypes.int32, d).scatter_add(LazyBuffer.load(index, dtypes.int32, d), 0, (5,)).numpy()
        for d in DEVICES
    )
    np.testing.assert_array_equal(got, ref)


def test_pad(backend):
    x = randn(3, 4)
    check(lambda a: a.pad(((1, 2), (0, 3)), 0.0), x)
    check(lambda a: a.permute((1, 0)).pad(((2, 0), (1, 1)), -np.inf), x)
    i = rng.integers(0, 9, (2, 3)).astype(np.int32)
    check(lambda a: a.pad(((1, 1), (1, 1)), 7), i, dtype=dtypes.int32)


# --------------------------------------------------------------------------- runtime
def test_dispatch_folding(backend):
    n = 65536 * 256 + 1000  # more than 65535 workgroups of 256 threads
    x = np.arange(n, dtype=np.float32) % 1000
    before = backend.stats["dispatches"]
    ref, got = both(lambda a: a.e(Op.ADD, a.const_like(1.0)), x)
    assert backend.stats["dispatches"] == before + 1
    np.testing.assert_array_equal(got[-5000:], ref[-5000:])
    np.testing.assert_array_equal(got[:5000], ref[:5000])


def test_long_chain_one_submit(backend):
    x = randn(64, 32)
    before = backend.stats["submits"]

    def chain(a):
        for i in range(40):
            a = a.e(Op.MUL, a.const_like(0.99)).e(Op.ADD, a.const_like(0.01 * (i % 3)))
        return a.r(Op.SUM, (1,))

    check(chain, x, rtol=1e-4, atol=1e-4)
    assert backend.stats["submits"] - before <= 2  # the run and the readback


def test_pipeline_cache_and_pool(backend):
    x = randn(33, 17)
    check(lambda a: a.e(Op.EXP).e(Op.SIN), x)
    compiled, hits = backend.stats["kernels_compiled"], backend.stats["pipeline_cache_hits"]
    check(lambda a: a.e(Op.EXP).e(Op.SIN), x)
    assert backend.stats["kernels_compiled"] == compiled
    assert backend.stats["pipeline_cache_hits"] >= hits + 1
    gc.collect()
    allocated = backend.stats["bytes_allocated"]
    for _ in range(5):
        check(lambda a: a.e(Op.EXP).e(Op.SIN), x)
        gc.collect()
    assert backend.stats["bytes_allocated"] == allocated  # reused from the pool


def test_download_range(backend):
    x = randn(10, 10)
    lb = LazyBuffer.load(x, dtypes.float32, "webgpu")
    np.testing.assert_array_equal(lb.slice(((3, 5, 1), (0, 10, 1))).numpy(), x[3:5])
    np.testing.assert_array_equal(backend.download(lb.realized, dtypes.float32, 95, 5), x.reshape(-1)[95:])


def test_too_large_buffer(backend):
    limit = backend.max_binding
    with pytest.raises(MemoryError, match="max_storage_buffer_binding_size"):
        backend.pool.allocate(limit + 4)


def test_compile_error_shows_source(backend):
    from smolgrad.backend.webgpu_backend import ShaderCompileError

    bad = "@compute @workgroup_size(1) fn main() { let x: f32 = undefined_name; }"
    with pytest.raises(ShaderCompileError, match="undefined_name"):
        backend.pipeline(bad, 0, 0)


def test_enumerate_adapters(backend):
    from smolgrad.backend.webgpu_backend import enumerate_adapters

    adapters = enumerate_adapters()
    assert adapters and sum(a["selected"] for a in adapters) == 1
    assert {"name", "backend", "type", "vendor", "description"} <= set(adapters[0])
