"""smolgrad.data: IDX parsing, MNIST files (local, downloaded, corrupt) and the real MNIST."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from smolgrad.data import MNIST, DataError, data_root, read_idx

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """$SMOLGRAD_DATA, else ../shared/data next to the checkout, if it has MNIST."""
    for folder in (os.environ.get("SMOLGRAD_DATA"), REPO.parent / "shared" / "data"):
        if folder and (Path(folder) / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file():
            return Path(folder)
    return None


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


# Two tiny "MNIST" splits of 3 and 2 images of 28x28.
rng = np.random.default_rng(0)
TINY = {
    "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)),
    "train-labels-idx1-ubyte": idx_bytes(np.array([5, 0, 4], dtype=np.uint8)),
    "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)),
    "t10k-labels-idx1-ubyte": idx_bytes(np.array([7, 2], dtype=np.uint8)),
}


class TinyMNIST(MNIST):
    """MNIST whose checksums are those of the tiny files above."""

    resources = {name: hashlib.md5(data).hexdigest() for name, data in TINY.items()}


def write_tiny(folder: Path, names=TINY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.gz").write_bytes(gzip.compress(TINY[name]))
    return folder


def mirror(tmp_path: Path, name: str = "mirror") -> str:
    """A folder of the .gz files reachable as a file:// URL, ending in '/'."""
    return write_tiny(tmp_path / name).as_uri() + "/"


# ----- IDX -----

def test_read_idx_parses_a_gzipped_3d_ubyte_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("code, dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_reads_every_idx_type_big_endian(tmp_path, code, dtype):
    values = np.array([[-3, 1], [2, 100]], dtype=dtype)
    path = tmp_path / "values.idx"
    path.write_bytes(idx_bytes(values, code))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, values)


def test_read_idx_rejects_a_truncated_file(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(np.zeros((4, 5), dtype=np.uint8))[:-3])
    with pytest.raises(DataError, match=r"short.idx is truncated: shape \(4, 5\) of uint8 needs 32 bytes, the file has 29"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_header(tmp_path):
    path = tmp_path / "header.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(DataError, match="header needs 16 bytes"):
        read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\0")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(path)


def test_read_idx_rejects_a_bad_magic_number(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(DataError, match="not an IDX file: its magic number is 01020801"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_gzip_file(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))[:-20])
    with pytest.raises(DataError, match="cut.gz is not a valid gzip file: it is truncated or corrupt"):
        read_idx(path)


def test_read_idx_rejects_a_gzip_file_with_a_bad_crc(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8))))
    data[-8] ^= 0xFF  # the CRC32 of the uncompressed data
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


# ----- where the files are found -----

def test_data_root_prefers_the_argument_then_smolgrad_data_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SMOLGRAD_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SMOLGRAD_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "smolgrad"


def test_mnist_reads_a_local_folder(tmp_path):
    write_tiny(tmp_path / "mnist")
    train, test = TinyMNIST(tmp_path, download=False), TinyMNIST(tmp_path, train=False, download=False)
    assert (len(train), len(test)) == (3, 2)
    assert train.data.shape == (3, 28, 28) and train.data.dtype == np.uint8
    assert train.targets.tolist() == [5, 0, 4] and train.targets.dtype == np.int64
    image, label = test[1]
    assert image.shape == (28, 28) and label == 2


def test_mnist_reads_files_straight_in_root_and_uncompressed(tmp_path):
    for name, data in TINY.items():
        (tmp_path / name).write_bytes(data)
    assert TinyMNIST(tmp_path, train=False, download=False).targets.tolist() == [7, 2]


def test_mnist_uses_smolgrad_data_when_no_root_is_given(monkeypatch, tmp_path):
    write_tiny(tmp_path / "mnist")
    monkeypatch.setenv("SMOLGRAD_DATA", str(tmp_path))
    assert TinyMNIST(download=False).targets.tolist() == [5, 0, 4]


def test_mnist_applies_transforms(tmp_path):
    write_tiny(tmp_path / "mnist")
    ds = TinyMNIST(tmp_path, download=False, transform=lambda im: im.astype(np.float32) / 255,
                   target_transform=lambda t: t + 10)
    image, label = ds[0]
    assert image.dtype == np.float32 and image.max() <= 1.0 and label == 15


def test_mnist_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="not found .*pass download=True, or set SMOLGRAD_DATA"):
        TinyMNIST(tmp_path, download=False)


def test_mnist_rejects_a_local_file_with_a_wrong_checksum(tmp_path):
    folder = write_tiny(tmp_path / "mnist")
    wrong = TINY["train-labels-idx1-ubyte"][:-1] + b"\x09"  # a valid IDX file with another label
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(wrong))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is corrupt or truncated: the MD5"):
        TinyMNIST(tmp_path, download=False)


def test_mnist_rejects_a_truncated_local_file(tmp_path):
    folder = write_tiny(tmp_path / "mnist")
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is not a valid gzip file"):
        TinyMNIST(tmp_path, train=False, download=False)


# ----- downloads (file:// mirrors stand in for the internet) -----

def test_mnist_downloads_missing_files_from_the_first_mirror_that_works(tmp_path, monkeypatch):
    monkeypatch.setattr(TinyMNIST, "mirrors", [(tmp_path / "nowhere").as_uri() + "/", mirror(tmp_path)])
    root = tmp_path / "root"
    ds = TinyMNIST(root, train=False)
    assert ds.targets.tolist() == [7, 2]
    cached = sorted(p.name for p in (root / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_mnist_uses_the_cached_download_the_second_time(tmp_path, monkeypatch):
    monkeypatch.setattr(TinyMNIST, "mirrors", [mirror(tmp_path)])
    TinyMNIST(tmp_path / "root", train=False)
    monkeypatch.setattr(TinyMNIST, "mirrors", [])
    assert TinyMNIST(tmp_path / "root", train=False).targets.tolist() == [7, 2]


def test_mnist_skips_a_mirror_whose_file_fails_the_checksum(tmp_path, monkeypatch):
    bad = write_tiny(tmp_path / "bad")
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(TINY["t10k-labels-idx1-ubyte"][:-1] + b"\x01"))
    monkeypatch.setattr(TinyMNIST, "mirrors", [bad.as_uri() + "/", mirror(tmp_path, "good")])
    assert TinyMNIST(tmp_path / "root", train=False).targets.tolist() == [7, 2]


def test_mnist_download_failure_leaves_no_file_behind(tmp_path, monkeypatch):
    bad = write_tiny(tmp_path / "bad")
    path = bad / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])  # truncated
    monkeypatch.setattr(TinyMNIST, "mirrors", [bad.as_uri() + "/"])
    root = tmp_path / "root"
    with pytest.raises(DataError, match="could not download t10k-images-idx3-ubyte.gz; tried:\n.*not a valid gzip"):
        TinyMNIST(root, train=False)
    assert list((root / "mnist").iterdir()) == []


# ----- the real MNIST -----

@pytest.fixture(scope="module")
def real_root() -> Path:
    root = real_data_dir()
    if root is None:
        pytest.skip("the real MNIST files are not here: set SMOLGRAD_DATA to a folder with mnist/*.gz")
    return root


def test_real_mnist_train_split_loads(real_root):
    ds = MNIST(real_root, train=True, download=False)
    assert ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(ds.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_mnist_test_split_loads(real_root):
    ds = MNIST(real_root, train=False, download=False)
    image, label = ds[0]
    assert len(ds) == 10000 and label == 7
    assert image.shape == (28, 28) and image.max() == 255
