"""MNIST handwritten digits (LeCun, Cortes and Burges; CC BY-SA 3.0) and Fashion-MNIST
(Xiao, Rasul and Vollgraf, Zalando Research; MIT), like torchvision's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .download import DataError, data_root, download, md5
from .idx import decompress, parse_idx


class MNIST(ImageDataset):
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
    folders = ["mnist", "."]  # where in root to look, in order; downloads go to the first
    # True: `resources` holds the MD5 of the files as published (.gz), so only .gz copies can
    # be checked; False: of their uncompressed contents (any .gz or uncompressed copy)
    checksums_of_gz = False
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
            raise DataError(f"{self._name} {prefix} files disagree: images of shape {images.shape}, labels of shape {labels.shape}")
        self.data = images
        self.targets = labels.astype(np.int64)

    # ----- files -----
    @property
    def _name(self) -> str:
        return next(c.__name__ for c in type(self).__mro__ if c.__module__ == __name__)

    def _candidates(self, name: str) -> list[Path]:
        files = (f"{name}.gz",) if self.checksums_of_gz else (f"{name}.gz", name)
        return [self.root / folder / file for folder in self.folders for file in files]

    def _read_verified(self, path: Path, name: str) -> bytes:
        """The uncompressed contents of `path`, after checking their MD5."""
        raw = path.read_bytes()
        contents = decompress(raw, str(path))
        digest = md5(raw if self.checksums_of_gz else contents)
        if digest != self.resources[name]:
            what = "the file" if self.checksums_of_gz else "its uncompressed contents"
            raise DataError(
                f"{path} is corrupt or truncated: the MD5 of {what} is {digest}, expected "
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
                    f"{self._name} file {name}.gz not found (looked for {places}); pass download=True, or set "
                    f"SMOLGRAD_DATA (or root=) to a folder that has the four {self._name} files"
                )
            path = self.root / self.folders[0] / f"{name}.gz"
            download([url + f"{name}.gz" for url in self.mirrors], path, lambda p: self._read_verified(p, name))
        return parse_idx(self._read_verified(path, name), str(path))


class FashionMNIST(MNIST):
    """The Fashion-MNIST train (60,000) or test (10,000) split: 28 x 28 grayscale images
    of ten kinds of clothing, in MNIST's IDX format and file names.

    Looks in `root/fashion_mnist/` (and torchvision's `root/FashionMNIST/raw/`), downloads
    into `root/fashion_mnist/`. Its published MD5s are of the .gz files, so it reads
    the .gz files as published (an uncompressed copy cannot be checked). Otherwise as MNIST."""

    mirrors = [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ]
    resources = {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    folders = ["fashion_mnist", "FashionMNIST/raw"]
    checksums_of_gz = True
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
