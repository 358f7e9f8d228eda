"""Samplers: the order in which a DataLoader visits a data set's indices, as in
torch.utils.data (SequentialSampler, RandomSampler, SubsetRandomSampler,
WeightedRandomSampler, BatchSampler)."""

from __future__ import annotations

import numbers
from typing import Iterable, Iterator, Sequence

import numpy as np


def as_generator(generator) -> np.random.Generator:
    """A NumPy generator from None (smolgrad's global one, seeded by manual_seed),
    an int seed, or a NumPy Generator."""
    if generator is None:
        from ..creation import generator as global_generator

        return global_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    from ..random import Generator

    if isinstance(generator, Generator):  # torch code passes a torch.Generator
        return generator.numpy_generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"generator must be None, an int seed, a smolgrad.Generator or a numpy.random.Generator, got {type(generator).__name__}"
    )


def _made_once(generator) -> np.random.Generator | None:
    """An int seed becomes its generator once, so successive epochs draw successive
    (different) orders; None stays None (the global generator, looked up at each epoch)."""
    return None if generator is None else as_generator(generator)


class Sampler:
    """Base class: an iterable over indices (or, for BatchSampler, lists of indices)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


class SequentialSampler(Sampler):
    """The indices 0, 1, ..., len(data_source) - 1, in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch; with `replacement`, `num_samples`
    indices drawn uniformly with replacement. Draws from `generator` (an int seed, a
    numpy.random.Generator, or None for smolgrad's global generator)."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        if num_samples is not None and (
            isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples <= 0
        ):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = _made_once(generator)

    @property
    def num_samples(self) -> int:
        """How many indices an epoch yields (the data set's size unless given)."""
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n, rng = len(self.data_source), as_generator(self.generator)
        if self.replacement:
            if n == 0:
                raise ValueError("RandomSampler: cannot draw samples with replacement from an empty data set")
            yield from rng.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n if n else 0):
            yield from rng.permutation(n).tolist()
        if n:
            yield from rng.permutation(n)[: self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order each epoch."""

    def __init__(self, indices: Sequence[int], generator=None):
        self.indices = indices
        self.generator = _made_once(generator)

    def __iter__(self) -> Iterator[int]:
        for i in as_generator(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probabilities proportional to `weights`."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples!r}")
        weights = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights, dtype=np.float64)
        if weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"WeightedRandomSampler: weights must be a 1-D sequence of finite non-negative numbers with a "
                f"positive sum, got shape {weights.shape}"
            )
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement from "
                f"{np.count_nonzero(weights)} indices of non-zero weight"
            )
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = _made_once(generator)

    def __iter__(self) -> Iterator[int]:
        p = self.weights / self.weights.sum()
        rng = as_generator(self.generator)
        return iter(rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of `sampler` into lists of `batch_size`; the last, shorter one
    is dropped with `drop_last`."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
