"""Data sets and loading (torch.utils.data and a few of torchvision's data sets);
also importable as smolgrad.utils.data, PyTorch's path.

    from smolgrad.data import DataLoader, TensorDataset, MNIST, make_moons
"""

from .cifar import CIFAR10
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import Dataset, Subset, TensorDataset, random_split
from .distributed import DistributedSampler
from .download import DataError, data_root
from .idx import read_idx
from .mnist import MNIST, FashionMNIST
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .synthetic import make_moons
from .tinystories import fetch_tinystories, load_stories, read_stories, split_stories, template_stories
from .worker import WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler",
    "CIFAR10",
    "DataError",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "FashionMNIST",
    "MNIST",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "data_root",
    "default_collate",
    "default_convert",
    "fetch_tinystories",
    "get_worker_info",
    "load_stories",
    "make_moons",
    "random_split",
    "read_idx",
    "read_stories",
    "split_stories",
    "template_stories",
]
