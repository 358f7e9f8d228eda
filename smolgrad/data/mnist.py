"""MNIST handwritten digits (LeCun, Cortes and Burges; CC BY-SA 3.0), like torchvision's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .download import DataError, data_root, download, md5
from .idx import decompress, parse_idx


class MNIST(Dataset):
    """The MNIST train (60,000) or test (10,000) split.

    Looks for the four IDX files (`train-images-idx3-ubyte.gz`, ...; gzipped or not) in
    `root/mnist/` or `root/`, where root is the argument, else $SMOLGRAD_DATA, else
    ~/.cache/smolgrad. Missing files are downloaded into `root/mnist/` from the public
    mirrors when `download` is true. Every file is checked against the MD5 of its
    uncompressed contents before it is used: a corrupt or truncated file raises
    DataError and nothing from it is used.

    `data` holds the images (uint8, N x 28 x 28) and `targets` the labels (int64, N).
    `dataset[i]` is (image, label): the uint8 28 x 28 array and an int, passed through
    `transform` and `target_transform` when given."""

    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    # MD5 of each file's uncompressed contents (the same for every mirror's .gz and for
    # a recompressed local copy).
    resources = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, download: bool = True,
                 transform=None, target_transform=None):
        self.root = data_root(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        prefix = "train" if train else "t10k"
        images = self._load(f"{prefix}-images-idx3-ubyte", download)
        labels = self._load(f"{prefix}-labels-idx1-ubyte", download)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"MNIST {prefix} files disagree: images of shape {images.shape}, labels of shape {labels.shape}")
        self.data = images
        self.targets = labels.astype(np.int64)

    def __getitem__(self, index):
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"MNIST(split={split}, samples={len(self)}, root={str(self.root)!r})"

    # ----- files -----
    def _candidates(self, name: str) -> list[Path]:
        return [folder / file for folder in (self.root / "mnist", self.root) for file in (f"{name}.gz", name)]

    def _read_verified(self, path: Path, name: str) -> bytes:
        """The uncompressed contents of `path`, after checking their MD5."""
        contents = decompress(path.read_bytes(), str(path))
        digest = md5(contents)
        if digest != self.resources[name]:
            raise DataError(
                f"{path} is corrupt or truncated: the MD5 of its uncompressed contents is {digest}, expected "
                f"{self.resources[name]}. Delete it (it is downloaded again with download=True) or replace it "
                "with a good copy."
            )
        return contents

    def _load(self, name: str, allow_download: bool) -> np.ndarray:
        path = next((p for p in self._candidates(name) if p.is_file()), None)
        if path is None:
            if not allow_download:
                places = ", ".join(str(p) for p in self._candidates(name))
                raise DataError(
                    f"MNIST file {name}.gz not found (looked for {places}); pass download=True, or set "
                    "SMOLGRAD_DATA (or root=) to a folder that has the four MNIST files"
                )
            path = self.root / "mnist" / f"{name}.gz"
            download([url + f"{name}.gz" for url in self.mirrors], path, lambda p: self._read_verified(p, name))
        return parse_idx(self._read_verified(path, name), str(path))
