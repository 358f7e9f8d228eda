"""smolgrad.load of PyTorch checkpoints (torch.save's zip format), read without running
their code. PyTorch is not installed for the tests: `torch_save` below writes the format
as torch.save does (a protocol-2 pickle whose tensors are torch._utils._rebuild_tensor_v2
calls over storages kept as raw bytes beside it), with stand-in `torch` modules."""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import nn
from smolgrad.serialization import CheckpointError

STORAGE_OF = {np.float32: "FloatStorage", np.float64: "DoubleStorage", np.float16: "HalfStorage",
              np.int64: "LongStorage", np.int32: "IntStorage", np.int16: "ShortStorage", np.int8: "CharStorage",
              np.uint8: "ByteStorage", np.bool_: "BoolStorage"}  # fmt: skip


class FakeTensor:
    """A tensor for torch_save: `shape`, `stride` (elements) and `offset` into `storage`,
    a flat array (saved once however many tensors share it); kind: the storage class."""

    def __init__(self, storage: np.ndarray, shape, stride=None, offset=0, kind=None):
        self.storage, self.shape, self.offset = storage, tuple(shape), offset
        self.stride = tuple(stride) if stride is not None else tuple(
            int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))  # fmt: skip
        self.kind = kind or STORAGE_OF[storage.dtype.type]

    @classmethod
    def of(cls, array: np.ndarray) -> FakeTensor:
        return cls(np.ascontiguousarray(array).reshape(-1), array.shape)


@pytest.fixture
def torch_save(monkeypatch):
    """torch_save(obj, path, big_endian=False): write obj as torch.save would."""
    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled by reference")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    fake_torch._utils = fake_utils
    storage_classes = {}
    for name in set(STORAGE_OF.values()) | {"BFloat16Storage"}:
        storage_classes[name] = type(name, (), {"__module__": "torch"})
        setattr(fake_torch, name, storage_classes[name])
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Storage:
        def __init__(self, key, kind, numel):
            self.key, self.kind, self.numel = key, kind, numel

    def save(obj, path, big_endian=False, prefix="archive"):
        storages: dict[int, tuple[Storage, np.ndarray]] = {}

        def reduce_tensor(t: FakeTensor):
            if id(t.storage) not in storages:
                storages[id(t.storage)] = (Storage(str(len(storages)), t.kind, t.storage.size), t.storage)
            storage = storages[id(t.storage)][0]
            return _rebuild_tensor_v2, (storage, t.offset, t.shape, t.stride, False, collections.OrderedDict())

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, Storage):
                    return ("storage", storage_classes[o.kind], o.key, "cpu", o.numel)
                return None

            def reducer_override(self, o):
                return reduce_tensor(o) if isinstance(o, FakeTensor) else NotImplemented

        import io

        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(f"{prefix}/data.pkl", buf.getvalue())
            z.writestr(f"{prefix}/byteorder", "big" if big_endian else "little")
            for storage, values in storages.values():
                z.writestr(f"{prefix}/data/{storage.key}", values.astype(values.dtype.newbyteorder(">" if big_endian else "<")).tobytes())
            z.writestr(f"{prefix}/version", "3\n")

    return save


def test_a_state_dict_loads_into_a_smolgrad_model(tmp_path, torch_save, device):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    values = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in model.state_dict().items()}
    values["1.num_batches_tracked"] = np.array(7, np.int64)
    sd = collections.OrderedDict((k, FakeTensor.of(v)) for k, v in values.items())
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch_save(sd, tmp_path / "model.pt")
    loaded = sg.load(tmp_path / "model.pt", device=device)
    assert type(loaded) is collections.OrderedDict and list(loaded) == list(values)
    assert loaded._metadata == {"": {"version": 1}}
    assert all(t.device == device for t in loaded.values())
    model.load_state_dict(loaded)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.detach().numpy(), values[k])


def test_dtypes_views_shared_storages_and_python_values(tmp_path, torch_save):
    base = np.arange(10, dtype=np.float32)
    matrix = np.arange(6, dtype=np.float64)
    bf16 = np.array([1.5, -2.25, 3.0e38], np.float32).view(np.uint32) >> 16  # bfloat16: a float32's high bits
    obj = {
        "half": FakeTensor.of(np.array([1.5, -2.0], np.float16)),
        "long": FakeTensor.of(np.array([1, -2, 3], np.int64)),
        "int": FakeTensor.of(np.array([4], np.int32)),
        "bool": FakeTensor.of(np.array([True, False])),
        "int8": FakeTensor.of(np.array([-3, 4], np.int8)),
        "uint8": FakeTensor.of(np.array([250, 4], np.uint8)),
        "bfloat16": FakeTensor(bf16.astype(np.uint16), (3,), kind="BFloat16Storage"),
        "scalar": FakeTensor(np.array([3.5], np.float32), ()),
        "empty": FakeTensor(np.zeros(0, np.float32), (0, 3)),
        "transposed": FakeTensor(matrix, (3, 2), (1, 3)),  # a (2, 3) matrix's .t()
        "views": (FakeTensor(base, (3,), offset=2), FakeTensor(base, (2, 2), (2, 1), offset=4)),  # one storage
        "epoch": 3, "best": 0.91, "name": "run", "tags": ["a", ("b", None)], "ids": {1, 2},
    }  # fmt: skip
    torch_save(obj, tmp_path / "ckpt.pt")
    got = sg.load(tmp_path / "ckpt.pt")
    expect = {
        "half": (np.array([1.5, -2.0], np.float16), sg.float16),
        "long": (np.array([1, -2, 3]), sg.int64),
        "int": (np.array([4]), sg.int32),
        "bool": (np.array([True, False]), sg.bool),
        "int8": (np.array([-3, 4]), sg.int32),
        "uint8": (np.array([250, 4]), sg.int32),
        "bfloat16": (np.array([1.5, -2.25, 2.9908e38], np.float32), sg.float32),
        "scalar": (np.array(3.5, np.float32), sg.float32),
        "empty": (np.zeros((0, 3), np.float32), sg.float32),
        "transposed": (matrix.reshape(2, 3).T, sg.float64),
    }
    for k, (want, dtype) in expect.items():
        assert got[k].dtype == dtype and got[k].shape == want.shape, k
        np.testing.assert_allclose(got[k].numpy(), want, rtol=1e-3 if k == "bfloat16" else 0)
    np.testing.assert_array_equal(got["views"][0].numpy(), [2, 3, 4])
    np.testing.assert_array_equal(got["views"][1].numpy(), [[4, 5], [6, 7]])
    assert (got["epoch"], got["best"], got["name"], got["tags"], got["ids"]) == (3, 0.91, "run", ["a", ("b", None)], {1, 2})


def test_a_big_endian_checkpoint(tmp_path, torch_save):
    torch_save({"w": FakeTensor.of(np.array([1.0, -2.5], np.float32))}, tmp_path / "be.pt", big_endian=True)
    np.testing.assert_array_equal(sg.load(tmp_path / "be.pt")["w"].numpy(), [1.0, -2.5])


def test_other_classes_are_refused_and_never_run(tmp_path, torch_save):
    torch_save({"cmd": os.getcwd}, tmp_path / "evil.pt")  # a callable: a real file could name os.system
    with pytest.raises(CheckpointError, match="refuses posix.getcwd|refuses nt.getcwd|refuses os.getcwd"):
        sg.load(tmp_path / "evil.pt")


def test_bad_files_are_clear(tmp_path, torch_save):
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="legacy"):
        sg.load(legacy)
    not_torch = tmp_path / "other.zip"
    with zipfile.ZipFile(not_torch, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        sg.load(not_torch)
    torch_save({"w": FakeTensor(np.zeros(4, np.float32), (4,), offset=2)}, tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match="outside its storage"):
        sg.load(tmp_path / "short.pt")
