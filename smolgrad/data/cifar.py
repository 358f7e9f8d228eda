"""CIFAR-10 (Krizhevsky, 2009), from its binary version (no pickle), like torchvision's."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .download import DataError, data_root, download

RECORD = 1 + 3 * 32 * 32  # a label byte, then the red, green and blue 32 x 32 planes


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CIFAR10(ImageDataset):
    """The CIFAR-10 train (50,000) or test (10,000) split: 32 x 32 colour images of ten
    classes.

    Reads the binary version's archive `cifar-10-binary.tar.gz` from `root/cifar10/` or
    `root/`, where root is the argument, else $SMOLGRAD_DATA, else ~/.cache/smolgrad; it is
    downloaded into `root/cifar10/` from the authors' site when missing and `download` is
    true. The archive is checked against its published MD5 before it is used (a corrupt or
    truncated one raises DataError and nothing from it is used), and the batches
    (data_batch_1.bin ... data_batch_5.bin, test_batch.bin: records of a label byte and
    3072 pixel bytes) are read straight from it: nothing is extracted, nothing unpickled.

    `data` holds the images (uint8, N x 32 x 32 x 3, channels last as in torchvision) and
    `targets` the labels (int64, N). `dataset[i]` is (image, label): the uint8 32 x 32 x 3
    array and an int, passed through `transform` and `target_transform` when given."""

    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    archive = "cifar-10-binary.tar.gz"
    archive_md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    folder = "cifar-10-batches-bin"  # the batches' folder inside the archive
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, transform=None,
                 target_transform=None, download: bool = True):
        self.root = data_root(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        path = self._archive_path(download)
        records = [self._read_batch(path, name) for name in (self.train_files if train else self.test_files)]
        records = np.concatenate(records)
        labels = records[:, 0]
        if labels.size and labels.max() >= len(self.classes):
            raise DataError(
                f"{path}: a CIFAR-10 label is {int(labels.max())}, but the labels are 0 to {len(self.classes) - 1}; "
                "the archive is not CIFAR-10's binary version"
            )
        self.data = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.targets = labels.astype(np.int64)

    # ----- files -----
    def _candidates(self) -> list[Path]:
        return [self.root / "cifar10" / self.archive, self.root / self.archive]

    def _verify(self, path: Path) -> None:
        digest = _file_md5(path)
        if digest != self.archive_md5:
            raise DataError(
                f"{path} is corrupt or truncated: its MD5 is {digest}, expected {self.archive_md5}. Delete it "
                "(it is downloaded again with download=True) or replace it with a good copy."
            )

    def _archive_path(self, allow_download: bool) -> Path:
        path = next((p for p in self._candidates() if p.is_file()), None)
        if path is None:
            if not allow_download:
                places = ", ".join(str(p) for p in self._candidates())
                raise DataError(
                    f"CIFAR-10 archive {self.archive} not found (looked for {places}); pass download=True, or set "
                    "SMOLGRAD_DATA (or root=) to a folder that has it"
                )
            path = self._candidates()[0]
            download([url + self.archive for url in self.mirrors], path, self._verify)
        self._verify(path)
        return path

    def _read_batch(self, path: Path, name: str) -> np.ndarray:
        """The records of one batch file of the archive, as an (N, 3073) uint8 array."""
        member = f"{self.folder}/{name}"
        try:
            with tarfile.open(path, "r:gz") as tar:
                info = tar.getmember(member)
                if not info.isfile():
                    raise DataError(f"{path}: {member} is not a regular file")
                data = tar.extractfile(info).read()
        except KeyError:
            raise DataError(f"{path} has no {member}; it is not CIFAR-10's binary version") from None
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{path} is not a readable .tar.gz archive ({type(e).__name__}: {e})") from None
        if len(data) % RECORD:
            raise DataError(
                f"{path}: {member} has {len(data)} bytes, not a whole number of {RECORD}-byte records "
                "(a label byte and 3072 pixel bytes)"
            )
        return np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
