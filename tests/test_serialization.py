"""smolgrad.save / smolgrad.load: safetensors files, round trips, corrupt files, atomic writes."""

import json
import os
import pickle
import struct

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.optim import Adam
from smolgrad.serialization import CheckpointError

DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}


def sample(dtype: str, shape=(3, 4), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype == "int64":
        return rng.integers(-1000, 1000, size=shape).astype(np.int64)
    return rng.standard_normal(shape).astype(DTYPES[dtype])


def read_header(path) -> tuple[dict, int]:
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), 8 + n


def assert_same_tensor(got, expected: np.ndarray, device: str) -> None:
    assert isinstance(got, sg.Tensor) and got.device == device
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected)


# --------------------------------------------------------------------------- round trips
def test_float64_state_dict_round_trips_on_numpy(tmp_path):
    # (webgpu has no float64: test_float64_checkpoint_loaded_onto_webgpu_is_a_clear_error)
    test_model_state_dict_round_trips("numpy", "float64", tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_model_state_dict_round_trips(device, dtype, tmp_path):
    arrays = {"fc1.weight": sample(dtype, (4, 3)), "fc1.bias": sample(dtype, (4,), seed=1), "scale": sample(dtype, ())}
    state = {k: sg.tensor(a, device=device) for k, a in arrays.items()}
    sg.save(state, tmp_path / "model.safetensors")
    loaded = sg.load(tmp_path / "model.safetensors", device=device)
    assert list(loaded) == list(arrays)
    for k, a in arrays.items():
        assert loaded[k].dtype == state[k].dtype
        assert_same_tensor(loaded[k], a, device)


def test_optimizer_like_state_dict_round_trips(device, tmp_path):
    m, v = sample("float32", (2, 3)), sample("float32", (5,), seed=2)
    obj = {
        "state": {0: {"step": 3, "exp_avg": sg.tensor(m, device=device)}, 1: {"step": 1, "exp_avg": sg.tensor(v, device=device)}},
        "param_groups": [
            {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "name": None, "params": [0, 1]},
        ],
        "extra": {"inf": float("inf"), "tag": "run-7", "nested": [[1, 2], (3.5,)]},
    }
    sg.save(obj, tmp_path / "opt.safetensors")
    loaded = sg.load(tmp_path / "opt.safetensors", device=device)
    assert set(loaded["state"]) == {0, 1}  # int keys stay ints
    assert loaded["state"][0]["step"] == 3
    assert_same_tensor(loaded["state"][0]["exp_avg"], m, device)
    assert_same_tensor(loaded["state"][1]["exp_avg"], v, device)
    assert loaded["param_groups"] == obj["param_groups"]
    assert isinstance(loaded["param_groups"][0]["betas"], tuple)
    assert loaded["extra"] == obj["extra"]


def test_saved_optimizer_resumes_exactly(device, tmp_path):
    def make(values):
        ps = [sg.tensor(v, device=device, requires_grad=True) for v in values]
        return ps, Adam(ps, lr=0.1, amsgrad=True)

    def step(ps, opt, seed):
        for p, g in zip(ps, [sample("float32", p.shape, seed=seed + i) for i, p in enumerate(ps)]):
            p.grad = sg.tensor(g, device=device)
        opt.step()

    init = [sample("float32", (3, 2)), sample("float32", (4,), seed=5)]
    a, opt_a = make(init)
    step(a, opt_a, 10)
    sg.save({"params": list(a), "optimizer": opt_a.state_dict()}, tmp_path / "ckpt.safetensors")
    ckpt = sg.load(tmp_path / "ckpt.safetensors", device=device)
    b, opt_b = make([p.numpy() for p in ckpt["params"]])
    opt_b.load_state_dict(ckpt["optimizer"])
    step(a, opt_a, 20)
    step(b, opt_b, 20)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


def test_training_checkpoint_with_scheduler_resumes_the_schedule(tmp_path):
    from smolgrad.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    def make():
        w = sg.zeros(3, requires_grad=True, device="numpy")
        opt = Adam([w], lr=0.1)
        warm = LinearLR(opt, start_factor=0.1, total_iters=2)
        sched = SequentialLR(opt, [warm, CosineAnnealingLR(opt, T_max=5)], milestones=[2])
        return w, opt, sched

    w, opt, sched = make()
    for _ in range(3):
        w.grad = sg.ones(3, device="numpy")
        opt.step()
        sched.step()
    sg.save({"w": w, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 3}, tmp_path / "c.safetensors")
    ckpt = sg.load(tmp_path / "c.safetensors", device="numpy")
    w2, opt2, sched2 = make()
    w2.data = ckpt["w"]
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert ckpt["epoch"] == 3
    for _ in range(3):
        for p, o, s in ((w, opt, sched), (w2, opt2, sched2)):
            p.grad = sg.ones(3, device="numpy")
            o.step()
            s.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
    np.testing.assert_array_equal(w2.detach().numpy(), w.detach().numpy())


def test_load_puts_tensors_on_the_requested_device(webgpu, tmp_path):
    sg.save({"w": sg.tensor([1.0, 2.0], device="numpy")}, tmp_path / "w.safetensors")
    assert sg.load(tmp_path / "w.safetensors", device=webgpu)["w"].device == webgpu
    assert sg.load(tmp_path / "w.safetensors", device="cpu")["w"].device == "numpy"


def test_float64_checkpoint_loaded_onto_webgpu_is_a_clear_error(webgpu, tmp_path):
    sg.save({"x": sg.tensor(np.ones(2), dtype=sg.float64, device="numpy")}, tmp_path / "f64.safetensors")
    with pytest.raises(TypeError, match="float64"):
        sg.load(tmp_path / "f64.safetensors", device=webgpu)


def test_views_and_empty_tensors_round_trip(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {"transposed": sg.tensor(base, device="numpy").T, "flipped": sg.tensor(base, device="numpy").flip(0), "empty": sg.zeros(0, 3)}
    sg.save(obj, tmp_path / "v.safetensors")
    loaded = sg.load(tmp_path / "v.safetensors", device="numpy")
    np.testing.assert_array_equal(loaded["transposed"].numpy(), base.T)
    np.testing.assert_array_equal(loaded["flipped"].numpy(), base[::-1])
    assert loaded["empty"].shape == (0, 3)


def test_lazy_tensors_are_computed_before_saving(device, tmp_path):
    x = sg.tensor([1.0, 2.0, 3.0], device=device)
    sg.save({"y": (x * 2 + 1).exp()}, tmp_path / "y.safetensors")
    np.testing.assert_allclose(sg.load(tmp_path / "y.safetensors", device="numpy")["y"].numpy(), np.exp([3.0, 5.0, 7.0]), rtol=1e-6)


# --------------------------------------------------------------------------- the file format
def test_file_is_safetensors_layout(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    idx = np.array([5, -7], dtype=np.int64)
    sg.save({"w": sg.tensor(w, device="numpy"), "idx": sg.tensor(idx, device="numpy")}, tmp_path / "f.safetensors")
    header, start = read_header(tmp_path / "f.safetensors")
    raw = open(tmp_path / "f.safetensors", "rb").read()
    assert start % 8 == 0
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [2, 3]
    assert header["idx"]["dtype"] == "I64" and header["idx"]["shape"] == [2]
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
    b, e = header["w"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(raw[start + b : start + e], dtype="<f4").reshape(2, 3), w)
    b, e = header["idx"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(raw[start + b : start + e], dtype="<i8"), idx)


def test_plain_safetensors_file_loads_as_a_dict_of_tensors(tmp_path):
    """A file written by another tool (no smolgrad metadata) loads as name -> Tensor."""
    a = np.array([[1.5, -2.0]], dtype=np.float64)
    header = json.dumps({"a": {"dtype": "F64", "shape": [1, 2], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "plain.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + a.astype("<f8").tobytes())
    loaded = sg.load(tmp_path / "plain.safetensors", device="numpy")
    assert list(loaded) == ["a"] and loaded["a"].dtype == sg.float64
    np.testing.assert_array_equal(loaded["a"].numpy(), a)


def test_interoperates_with_the_safetensors_package(tmp_path):
    """Optional: only where the `safetensors` package is installed."""
    st = pytest.importorskip("safetensors.numpy")
    w = sample("float32", (3, 2))
    sg.save({"w": sg.tensor(w, device="numpy"), "n": sg.tensor([1, 2], device="numpy")}, tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    np.testing.assert_array_equal(theirs["w"], w)
    np.testing.assert_array_equal(theirs["n"], [1, 2])
    st.save_file({"x": np.arange(5, dtype=np.int32), "m": np.array([True, False])}, str(tmp_path / "theirs.safetensors"))
    loaded = sg.load(tmp_path / "theirs.safetensors", device="numpy")
    np.testing.assert_array_equal(loaded["x"].numpy(), np.arange(5))
    np.testing.assert_array_equal(loaded["m"].numpy(), [True, False])


# --------------------------------------------------------------------------- corrupt files
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    sg.save({"w": sg.tensor(sample("float32", (8, 8)), device="numpy"), "step": 4}, path)
    return path


@pytest.mark.parametrize("keep", [0, 5, 20, -1], ids=["empty", "in_size_field", "in_header", "in_data"])
def test_truncated_file_is_a_clear_error(good_file, keep):
    raw = good_file.read_bytes()
    good_file.write_bytes(raw[:keep] if keep >= 0 else raw[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        sg.load(good_file, device="numpy")


def test_garbage_header_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(struct.pack("<Q", 16) + b"\x00\xffnot json at all" + b"\x00" * 32)
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        sg.load(path, device="numpy")


def test_huge_header_size_is_rejected(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(CheckpointError, match="header size"):
        sg.load(path, device="numpy")


def write_with_header(path, header: dict, data: bytes) -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


@pytest.mark.parametrize(
    "entry, data, message",
    [
        ({"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}, bytes(4), "dtype 'BF16'"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}, bytes(8), "truncated"),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, bytes(8), "needs 12 bytes"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, bytes(8), "non-negative"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, bytes(8), "increasing pair"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, bytes(12), "account for 8 bytes"),
        ({"dtype": "F32", "shape": [2]}, bytes(8), "data_offsets"),
    ],
    ids=["unknown_dtype", "offsets_past_end", "size_mismatch", "negative_shape", "reversed_offsets", "trailing_bytes", "no_offsets"],
)
def test_inconsistent_header_is_a_clear_error(tmp_path, entry, data, message):
    path = tmp_path / "bad.safetensors"
    write_with_header(path, {"x": entry}, data)
    with pytest.raises(CheckpointError, match=message):
        sg.load(path, device="numpy")


def test_structure_referring_to_a_missing_tensor_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    structure = json.dumps({"__dict__": [["w", {"__tensor__": "nope"}]]})
    write_with_header(path, {"__metadata__": {"smolgrad.structure": structure}}, b"")
    with pytest.raises(CheckpointError, match="'nope'"):
        sg.load(path, device="numpy")


def test_pickle_file_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        sg.load(path, device="numpy")
    assert not marker.exists()


# --------------------------------------------------------------------------- atomic writes
def test_failing_save_leaves_the_old_file_intact(good_file, monkeypatch):
    before = good_file.read_bytes()

    def crash(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        sg.save({"w": sg.zeros(100, device="numpy")}, good_file)
    monkeypatch.undo()
    assert good_file.read_bytes() == before
    assert sorted(p.name for p in good_file.parent.iterdir()) == [good_file.name]  # no temp file left
    np.testing.assert_array_equal(sg.load(good_file, device="numpy")["w"].numpy(), sample("float32", (8, 8)))


def test_unsaveable_object_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="can't store a set"):
        sg.save({"w": sg.zeros(2, device="numpy"), "bad": {1, 2}}, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_an_existing_file(good_file):
    sg.save({"v": sg.tensor([7], device="numpy")}, good_file)
    assert list(sg.load(good_file, device="numpy")) == ["v"]


def test_nn_module_state_dict_round_trips(device, tmp_path):
    from smolgrad import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(device)
    sg.save(model.state_dict(), tmp_path / "m.safetensors")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(device)
    fresh.load_state_dict(sg.load(tmp_path / "m.safetensors", device=device))
    x = sg.randn(5, 3, device=device)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())
