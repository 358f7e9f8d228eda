"""smolgrad.utils.data (the alias), samplers, DataLoader's sampler/batch_sampler/worker
options, FashionMNIST and CIFAR10 (on small files the tests write; nothing is downloaded)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.data import (
    CIFAR10,
    BatchSampler,
    DataError,
    DataLoader,
    Dataset,
    FashionMNIST,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    get_worker_info,
)


def numbered(n: int) -> TensorDataset:
    """Sample i is (x = [i, -i] as float32, y = i)."""
    i = np.arange(n)
    return TensorDataset(np.stack([i, -i], axis=1).astype(np.float32), i)


def as_lists(loader):
    """Every batch of an epoch, with tensors read back as lists (for comparisons)."""
    def plain(value):
        if isinstance(value, sg.Tensor):
            return (value.dtype.name, value.numpy().tolist())
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(plain(v) for v in value) if not hasattr(value, "_fields") else tuple(plain(v) for v in value)
        return value
    return [plain(batch) for batch in loader]


# --------------------------------------------------------------------------- smolgrad.utils.data
def test_utils_data_is_smolgrad_data():
    import smolgrad.utils.data as d
    from smolgrad.utils.data import DataLoader as DL, Dataset as DS, TensorDataset as TD, random_split

    assert d is sg.data and sg.utils.data is sg.data
    assert (DL, DS, TD, random_split) == (DataLoader, Dataset, TensorDataset, sg.data.random_split)


def test_utils_data_submodules_are_the_same_modules():
    import smolgrad.utils.data.dataloader as dl
    import smolgrad.utils.data.sampler as sampler
    from smolgrad.utils.data.dataset import Subset

    assert dl is sg.data.dataloader and sampler is sg.data.sampler and Subset is sg.data.Subset


# --------------------------------------------------------------------------- samplers
def test_sequential_sampler():
    s = SequentialSampler(numbered(5))
    assert list(s) == [0, 1, 2, 3, 4] and len(s) == 5


def test_random_sampler_permutes_and_follows_its_generator():
    s = RandomSampler(numbered(10), generator=3)
    first, second = list(s), list(s)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert list(RandomSampler(numbered(10), generator=3)) == first
    assert first == np.random.default_rng(3).permutation(10).tolist()


def test_random_sampler_with_num_samples_and_replacement():
    s = RandomSampler(numbered(4), num_samples=10, generator=0)
    out = list(s)
    assert len(out) == len(s) == 10 and sorted(out[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]  # whole permutations first
    drawn = list(RandomSampler(numbered(3), replacement=True, num_samples=3000, generator=1))
    assert set(drawn) == {0, 1, 2}
    np.testing.assert_allclose(np.bincount(drawn) / 3000, [1 / 3] * 3, atol=0.04)  # ~5 standard deviations


def test_random_sampler_without_generator_follows_manual_seed():
    sg.manual_seed(11)
    a = list(RandomSampler(numbered(8)))
    sg.manual_seed(11)
    assert list(RandomSampler(numbered(8))) == a


def test_subset_random_sampler_permutes_the_given_indices():
    s = SubsetRandomSampler([10, 20, 30, 40], generator=0)
    out = list(s)
    assert sorted(out) == [10, 20, 30, 40] and len(s) == 4


def test_weighted_random_sampler_draws_by_weight():
    out = list(WeightedRandomSampler([1.0, 0.0, 3.0], num_samples=4000, generator=0))
    counts = np.bincount(out, minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.25, 0.0, 0.75], atol=0.035)  # ~5 standard deviations
    no_repeat = list(WeightedRandomSampler([1, 1, 1, 1], num_samples=4, replacement=False, generator=0))
    assert sorted(no_repeat) == [0, 1, 2, 3]


@pytest.mark.parametrize("drop_last, expected", [(False, [[0, 1, 2], [3, 4, 5], [6]]), (True, [[0, 1, 2], [3, 4, 5]])])
def test_batch_sampler_groups_indices(drop_last, expected):
    s = BatchSampler(SequentialSampler(range(7)), batch_size=3, drop_last=drop_last)
    assert list(s) == expected and len(s) == len(expected)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: BatchSampler(range(3), batch_size=0, drop_last=False), ValueError, "batch_size should be a positive integer"),
        (lambda: BatchSampler(range(3), batch_size=2, drop_last=1), ValueError, "drop_last should be a boolean"),
        (lambda: RandomSampler(range(3), num_samples=0), ValueError, "num_samples should be a positive integer"),
        (lambda: RandomSampler(range(3), replacement=1), TypeError, "replacement should be a boolean"),
        (lambda: WeightedRandomSampler([1.0, -1.0], 2), ValueError, "non-negative"),
        (lambda: WeightedRandomSampler([1.0, 0.0], 2, replacement=False), ValueError, "without replacement"),
        (lambda: RandomSampler(range(3), generator="x"), TypeError, "generator must be None"),
    ],
)
def test_sampler_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --------------------------------------------------------------------------- DataLoader options
def test_dataloader_with_a_sampler_visits_its_indices():
    loader = DataLoader(numbered(10), batch_size=2, sampler=[9, 7, 5, 3, 1], device="numpy")
    assert [y.numpy().tolist() for _, y in loader] == [[9, 7], [5, 3], [1]]
    assert len(loader) == 3


def test_dataloader_with_a_batch_sampler():
    loader = DataLoader(numbered(10), batch_sampler=[[0, 1, 2], [8], [4, 5]], device="numpy")
    assert [y.numpy().tolist() for _, y in loader] == [[0, 1, 2], [8], [4, 5]]
    assert loader.batch_size is None and len(loader) == 3


def test_dataloader_with_subset_random_sampler_and_pin_memory():
    loader = DataLoader(numbered(10), batch_size=4, sampler=SubsetRandomSampler([1, 3, 5, 7, 9], generator=0),
                        pin_memory=True, device="numpy")
    assert sorted(v for _, y in loader for v in y.numpy().tolist()) == [1, 3, 5, 7, 9]


def test_dataloader_shuffle_order_is_that_of_a_random_sampler():
    loader = DataLoader(numbered(10), batch_size=10, shuffle=True, generator=5, device="numpy")
    assert next(iter(loader))[1].numpy().tolist() == np.random.default_rng(5).permutation(10).tolist()


def test_dataloader_arguments_follow_pytorchs_order():
    import inspect

    names = list(inspect.signature(DataLoader).parameters)
    assert names[:13] == [
        "dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "num_workers", "collate_fn", "pin_memory",
        "drop_last", "timeout", "worker_init_fn", "multiprocessing_context", "generator",
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
        (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
        (dict(num_workers=-1), "num_workers option should be non-negative"),
        (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing"),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
        (dict(num_workers=1, timeout=-1), "timeout option should be non-negative"),
        (dict(num_workers=1, multiprocessing_context="teleport"), "multiprocessing_context 'teleport' is not available"),
    ],
)
def test_dataloader_bad_option_combinations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(DataLoader(numbered(4), **kwargs))


# --------------------------------------------------------------------------- worker processes
Point = namedtuple("Point", "x y")


class Mixed(Dataset):
    """Samples of every kind default_collate handles."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {
            "image": np.full((2, 3), i, dtype=np.uint8),
            "label": i,
            "weight": i / 2,
            "flag": i % 2 == 0,
            "name": f"sample{i}",
            "pair": (np.float64(i), [i, -i]),
            "point": Point(np.int32(i), np.float32(-i)),
        }


@pytest.mark.parametrize("shuffle", [False, True])
def test_workers_give_the_same_batches_as_the_main_process(shuffle):
    def loader(workers):
        return DataLoader(Mixed(), batch_size=3, shuffle=shuffle, generator=4, num_workers=workers, device="numpy")

    single, multi = loader(0), loader(2)
    for epoch in range(2):  # a second epoch draws a new order: the same one
        assert as_lists(multi) == as_lists(single), f"epoch {epoch}"


def test_workers_keep_order_when_batches_finish_out_of_order():
    class Slow(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            time.sleep(0.15 if i < 2 else 0.0)  # the first batch (worker 0) is the slowest
            return np.float32(i)

    loader = DataLoader(Slow(), batch_size=2, num_workers=3, device="numpy")
    assert [b.numpy().tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]


def test_worker_batches_become_tensors_on_the_loader_device(device):
    x, y = next(iter(DataLoader(numbered(6), batch_size=3, num_workers=1, device=device)))
    assert x.device == device and y.device == device and y.dtype == sg.int64
    np.testing.assert_array_equal(x.numpy(), [[0, 0], [1, -1], [2, -2]])


def test_custom_collate_fn_runs_in_the_worker():
    def collate(samples):
        info = get_worker_info()
        return (info.id, [int(y) for _, y in samples])

    out = list(DataLoader(numbered(6), batch_size=2, num_workers=2, collate_fn=collate))
    assert out == [(0, [0, 1]), (1, [2, 3]), (0, [4, 5])]


def test_worker_info_and_worker_init_fn():
    class WhoLoads(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            info = get_worker_info()
            return np.array([info.id, info.num_workers, info.seed % 1000, int(os.environ["INIT_ID"])])

    def init(worker_id):
        os.environ["INIT_ID"] = str(10 + worker_id)

    assert get_worker_info() is None
    batches = [b.numpy() for b in DataLoader(WhoLoads(), batch_size=2, num_workers=2, worker_init_fn=init, device="numpy")]
    assert [b[0, 0] for b in batches] == [0, 1] and all(b[0, 1] == 2 for b in batches)
    assert [b[0, 3] for b in batches] == [10, 11]


def test_workers_draw_different_random_numbers_per_worker_and_epoch():
    class Noise(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.random.random()  # numpy's global generator, as augmentation code uses it

    loader = DataLoader(Noise(), batch_size=1, num_workers=2, device="numpy")
    epochs = [[b.item() for b in loader] for _ in range(2)]
    values = epochs[0] + epochs[1]
    assert len(set(values)) == 8, values
    sg.manual_seed(3)
    a = [b.item() for b in DataLoader(Noise(), batch_size=1, num_workers=2, device="numpy")]
    sg.manual_seed(3)
    b = [b.item() for b in DataLoader(Noise(), batch_size=1, num_workers=2, device="numpy")]
    assert a == b  # reproducible from manual_seed


class Faulty(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise ValueError(f"sample {i} is broken")
        return np.float32(i)


def test_a_worker_exception_is_raised_with_its_traceback():
    loader = DataLoader(Faulty(), batch_size=2, num_workers=2, device="numpy")
    got = []
    with pytest.raises(ValueError) as info:
        for batch in loader:
            got.append(batch.numpy().tolist())
    message = str(info.value)
    assert "Caught ValueError in DataLoader worker process 0" in message
    assert "sample 5 is broken" in message and "in __getitem__" in message and "Traceback" in message
    assert got == [[0, 1], [2, 3]]  # the batches before the failing one came through


def test_a_worker_exception_of_an_unsendable_type_becomes_a_runtime_error():
    class LocalError(Exception):
        pass

    class Bad(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise LocalError("local")

    with pytest.raises(RuntimeError, match="Caught LocalError in DataLoader worker process 0"):
        list(DataLoader(Bad(), batch_size=1, num_workers=1))


def test_a_batch_that_cannot_be_sent_back_is_a_clear_error():
    loader = DataLoader(numbered(4), batch_size=2, num_workers=1, collate_fn=lambda samples: lambda: samples)
    with pytest.raises(Exception, match="in DataLoader worker process 0(.|\n)*pickle"):
        list(loader)


def test_a_worker_that_dies_is_reported():
    class Dies(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            os._exit(3)

    with pytest.raises(RuntimeError, match="DataLoader worker \\(pid \\d+\\) exited unexpectedly with exit code 3"):
        list(DataLoader(Dies(), batch_size=1, num_workers=1))


def test_timeout_raises_when_a_batch_takes_too_long():
    class Sleepy(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(5)
            return np.float32(i)

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        list(DataLoader(Sleepy(), batch_size=1, num_workers=1, timeout=0.3))
    assert time.monotonic() - start < 4


def test_gpu_tensor_samples_in_a_worker_are_a_clear_error(webgpu):
    class OnGPU(Dataset):
        def __init__(self):
            self.t = sg.ones(4, 2, device=webgpu)

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.t[i]

    with pytest.raises(TypeError, match="worker processes cannot use a GPU.*num_workers=0"):
        list(DataLoader(OnGPU(), batch_size=2, num_workers=1))


def test_numpy_tensor_samples_work_in_a_worker():
    class Tensors(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return sg.full((2,), float(i), dtype=sg.float64, device="numpy")

    batches = list(DataLoader(Tensors(), batch_size=2, num_workers=1, device="numpy"))
    assert batches[1].dtype == sg.float64
    np.testing.assert_array_equal(batches[1].numpy(), [[2, 2], [3, 3]])


def test_workers_shut_down_at_the_end_of_an_epoch_and_when_a_loop_breaks():
    import smolgrad.data.dataloader as dl

    pools = []
    real = dl._WorkerPool.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        pools.append(self)

    dl._WorkerPool.__init__ = spy
    try:
        loader = DataLoader(numbered(40), batch_size=2, num_workers=2, device="numpy")
        list(loader)
        for batch in loader:
            break
        del batch
    finally:
        dl._WorkerPool.__init__ = real
    assert len(pools) == 2
    for pool in pools:
        for w in pool.workers:
            w.join(timeout=5)
            assert not w.is_alive() and w.exitcode == 0


def test_persistent_workers_serve_every_epoch():
    loader = DataLoader(numbered(12), batch_size=2, shuffle=True, generator=0, num_workers=2, persistent_workers=True,
                        device="numpy")
    reference = DataLoader(numbered(12), batch_size=2, shuffle=True, generator=0, device="numpy")
    for batch in loader:  # an epoch left unfinished: its late batches must not leak into the next
        break
    for batch in reference:
        break
    pids = [w.pid for w in loader._pool.workers]
    for _ in range(2):
        assert as_lists(loader) == as_lists(reference)
        assert [w.pid for w in loader._pool.workers] == pids and all(w.is_alive() for w in loader._pool.workers)
    pool = loader._pool
    del loader
    for w in pool.workers:
        w.join(timeout=5)
        assert not w.is_alive()


def test_spawned_workers_load_a_picklable_dataset():
    loader = DataLoader(numbered(6), batch_size=4, num_workers=1, multiprocessing_context="spawn", device="numpy")
    assert [y.numpy().tolist() for _, y in loader] == [[0, 1, 2, 3], [4, 5]]


# --------------------------------------------------------------------------- FashionMNIST
def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(">u1").tobytes()


rng = np.random.default_rng(0)
FASHION = {  # the files as "published": gzip-compressed, with fixed bytes (mtime 0)
    "train-images-idx3-ubyte": gzip.compress(idx_bytes(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)), mtime=0),
    "train-labels-idx1-ubyte": gzip.compress(idx_bytes(np.array([9, 0, 3], dtype=np.uint8)), mtime=0),
    "t10k-images-idx3-ubyte": gzip.compress(idx_bytes(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)), mtime=0),
    "t10k-labels-idx1-ubyte": gzip.compress(idx_bytes(np.array([1, 8], dtype=np.uint8)), mtime=0),
}


class TinyFashionMNIST(FashionMNIST):
    """FashionMNIST whose checksums are those of the tiny .gz files above."""

    resources = {name: hashlib.md5(data).hexdigest() for name, data in FASHION.items()}


def write_fashion(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in FASHION.items():
        (folder / f"{name}.gz").write_bytes(data)
    return folder


def test_fashion_mnist_reads_its_folder(tmp_path):
    write_fashion(tmp_path / "fashion_mnist")
    train = TinyFashionMNIST(tmp_path, train=True, download=False)
    test = TinyFashionMNIST(tmp_path, train=False, download=False)
    assert train.data.shape == (3, 28, 28) and train.data.dtype == np.uint8
    assert train.targets.tolist() == [9, 0, 3] and test.targets.tolist() == [1, 8]
    image, label = train[0]
    assert label == 9 and train.classes[label] == "Ankle boot"
    assert repr(test).startswith("TinyFashionMNIST(split=test, samples=2")


def test_fashion_mnist_reads_torchvisions_layout_and_applies_transforms(tmp_path):
    write_fashion(tmp_path / "FashionMNIST" / "raw")
    ds = TinyFashionMNIST(tmp_path, train=False, download=False, transform=lambda x: x.sum(), target_transform=str)
    assert ds[1][1] == "8" and ds[1][0] == ds.data[1].sum()


def test_fashion_mnist_does_not_take_mnist_files_in_root(tmp_path):
    write_fashion(tmp_path)  # straight in root, where MNIST's files would be
    with pytest.raises(DataError, match="TinyFashionMNIST|FashionMNIST file t10k-images-idx3-ubyte.gz not found"):
        TinyFashionMNIST(tmp_path, train=False, download=False)


def test_fashion_mnist_checks_the_published_gz_file(tmp_path):
    folder = write_fashion(tmp_path / "fashion_mnist")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=1))  # same contents, other bytes
    with pytest.raises(DataError, match="corrupt or truncated: the MD5 of the file is"):
        TinyFashionMNIST(tmp_path, train=False, download=False)


def test_fashion_mnist_downloads_into_its_folder(tmp_path, monkeypatch):
    mirror = write_fashion(tmp_path / "mirror").as_uri() + "/"
    monkeypatch.setattr(TinyFashionMNIST, "mirrors", [(tmp_path / "nowhere").as_uri() + "/", mirror])
    ds = TinyFashionMNIST(tmp_path / "root", train=True)
    assert ds.targets.tolist() == [9, 0, 3]
    assert sorted(p.name for p in (tmp_path / "root" / "fashion_mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    monkeypatch.setattr(TinyFashionMNIST, "mirrors", [])
    assert TinyFashionMNIST(tmp_path / "root", train=True).targets.tolist() == [9, 0, 3]  # the cached copy


def test_fashion_mnist_has_the_published_checksums():
    assert FashionMNIST.resources["train-images-idx3-ubyte"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert FashionMNIST.resources["t10k-labels-idx1-ubyte"] == "bb300cfdad3c16e7a12a480ee83cd310"


# --------------------------------------------------------------------------- CIFAR10
def cifar_records(labels, seed):
    """(records bytes, images N x 32 x 32 x 3) for the given labels."""
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)  # red plane, green plane, blue plane
    records = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], planes], axis=1)
    return records.tobytes(), images


BATCHES = {f"data_batch_{i}.bin": cifar_records([i, (i + 3) % 10], seed=i) for i in range(1, 6)}
BATCHES["test_batch.bin"] = cifar_records([7, 2, 9], seed=0)


def cifar_archive(batches=BATCHES, extra=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, (data, _) in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


ARCHIVE = cifar_archive()


class TinyCIFAR10(CIFAR10):
    archive_md5 = hashlib.md5(ARCHIVE).hexdigest()


def write_archive(folder: Path, data: bytes = ARCHIVE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    return folder


def test_cifar10_reads_the_binary_batches(tmp_path):
    write_archive(tmp_path / "cifar10")
    train = TinyCIFAR10(tmp_path, train=True, download=False)
    assert train.data.shape == (10, 32, 32, 3) and train.data.dtype == np.uint8
    assert train.targets.dtype == np.int64
    assert train.targets.tolist() == [label for i in range(1, 6) for label in (i, (i + 3) % 10)]
    np.testing.assert_array_equal(train.data[:2], BATCHES["data_batch_1.bin"][1])  # channels last
    np.testing.assert_array_equal(train.data[8:], BATCHES["data_batch_5.bin"][1])
    test = TinyCIFAR10(tmp_path, train=False, download=False)
    assert len(test) == 3 and test.targets.tolist() == [7, 2, 9]
    image, label = test[2]
    np.testing.assert_array_equal(image, BATCHES["test_batch.bin"][1][2])
    assert test.classes[label] == "truck"


def test_cifar10_archive_straight_in_root_and_transforms(tmp_path, monkeypatch):
    write_archive(tmp_path)
    monkeypatch.setenv("SMOLGRAD_DATA", str(tmp_path))
    ds = TinyCIFAR10(train=False, download=False, transform=lambda im: im.mean(axis=(0, 1)), target_transform=lambda y: -y)
    image, label = ds[0]
    assert image.shape == (3,) and label == -7


def test_cifar10_feeds_a_dataloader_with_workers(tmp_path):
    write_archive(tmp_path)
    ds = TinyCIFAR10(tmp_path, train=True, download=False)
    x, y = next(iter(DataLoader(ds, batch_size=4, num_workers=1, device="numpy")))
    assert x.shape == (4, 32, 32, 3)  # (uint8 pixels become smolgrad's int64, as with num_workers=0)
    np.testing.assert_array_equal(x.numpy(), ds.data[:4])
    assert y.numpy().tolist() == ds.targets[:4].tolist()


def test_cifar10_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz not found \\(looked for .*cifar10.*\\); pass download=True"):
        TinyCIFAR10(tmp_path, download=False)


def test_cifar10_rejects_a_corrupt_archive(tmp_path):
    write_archive(tmp_path, ARCHIVE[:-10])
    with pytest.raises(DataError, match="corrupt or truncated: its MD5 is .*, expected"):
        TinyCIFAR10(tmp_path, download=False)


def test_cifar10_downloads_verifies_and_caches(tmp_path, monkeypatch):
    bad = write_archive(tmp_path / "bad", ARCHIVE[:-10])
    good = write_archive(tmp_path / "good")
    monkeypatch.setattr(TinyCIFAR10, "mirrors", [bad.as_uri() + "/", good.as_uri() + "/"])
    root = tmp_path / "root"
    assert TinyCIFAR10(root, train=False).targets.tolist() == [7, 2, 9]
    assert [p.name for p in (root / "cifar10").iterdir()] == ["cifar-10-binary.tar.gz"]
    monkeypatch.setattr(TinyCIFAR10, "mirrors", [])
    assert len(TinyCIFAR10(root, train=True)) == 10


def test_cifar10_failed_download_leaves_no_file_behind(tmp_path, monkeypatch):
    bad = write_archive(tmp_path / "bad", ARCHIVE[:-10])
    monkeypatch.setattr(TinyCIFAR10, "mirrors", [bad.as_uri() + "/"])
    with pytest.raises(DataError, match="could not download cifar-10-binary.tar.gz; tried:\n.*MD5"):
        TinyCIFAR10(tmp_path / "root")
    assert list((tmp_path / "root" / "cifar10").iterdir()) == []


def archive_class(data: bytes):
    return type("Custom", (CIFAR10,), {"archive_md5": hashlib.md5(data).hexdigest()})


@pytest.mark.parametrize(
    "batches, message",
    [
        ({k: v for k, v in BATCHES.items() if k != "test_batch.bin"}, "has no cifar-10-batches-bin/test_batch.bin"),
        ({**BATCHES, "test_batch.bin": (BATCHES["test_batch.bin"][0][:-1], None)}, "not a whole number of 3073-byte records"),
        ({**BATCHES, "test_batch.bin": cifar_records([3, 10], seed=1)}, "a CIFAR-10 label is 10"),
    ],
    ids=["missing-batch", "partial-record", "bad-label"],
)
def test_cifar10_rejects_malformed_batches(tmp_path, batches, message):
    data = cifar_archive(batches)
    write_archive(tmp_path, data)
    with pytest.raises(DataError, match=message):
        archive_class(data)(tmp_path, train=False, download=False)


def test_cifar10_ignores_other_members_and_extracts_nothing(tmp_path):
    evil = tarfile.TarInfo("../../escaped.bin")
    evil.size = 3
    data = cifar_archive(extra=[(evil, b"bad")])
    write_archive(tmp_path / "cifar10", data)
    ds = archive_class(data)(tmp_path, train=False, download=False)
    assert len(ds) == 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cifar-10-binary.tar.gz", "cifar10"]


def test_cifar10_has_the_published_archive_checksum():
    assert CIFAR10.archive_md5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert CIFAR10.mirrors[0] + CIFAR10.archive == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
