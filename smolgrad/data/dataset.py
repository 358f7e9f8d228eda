"""Map-style data sets: Dataset, TensorDataset, Subset and random_split."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Dataset:
    """A map-style data set: subclasses define __getitem__(index) and __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")


def _as_array(x) -> np.ndarray:
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return x.detach().numpy()
    return np.asarray(x)


class ImageDataset(Dataset):
    """A labelled image data set held as arrays (torchvision's VisionDataset): subclasses
    set `data`, `targets` (int64), `root`, `train`, `transform` and `target_transform`."""

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
        return f"{type(self).__name__}(split={split}, samples={len(self)}, root={str(self.root)!r})"


class TensorDataset(Dataset):
    """Samples are rows of arrays that share their first dimension.

    Takes NumPy arrays, smolgrad tensors (copied to host memory once) or nested lists;
    `dataset[i]` is the tuple of the i-th rows, as NumPy values, which DataLoader's
    collate stacks into tensors on the loader's device."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array or tensor")
        self.tensors = tuple(_as_array(t) for t in tensors)
        sizes = [len(t) if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            shapes = ", ".join(str(t.shape) for t in self.tensors)
            raise ValueError(f"TensorDataset: all arrays need the same size in dim 0, got shapes {shapes}")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Split `dataset` into non-overlapping random subsets of the given lengths
    (or fractions summing to 1, like torch.utils.data.random_split)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        sizes = [int(np.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):  # hand out the remainder round-robin, as torch does
            sizes[i % len(sizes)] += 1
    else:
        sizes = [int(x) for x in lengths]
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise ValueError(
            f"random_split: lengths {list(lengths)} must be non-negative and sum to the data set's "
            f"length {n} (or be fractions that sum to 1)"
        )
    from .sampler import as_generator

    perm = as_generator(generator).permutation(n)
    out, start = [], 0
    for size in sizes:
        out.append(Subset(dataset, perm[start:start + size].tolist()))
        start += size
    return out
