"""Data sets and loading (torch.utils.data and a few of torchvision's data sets).

    from smolgrad.data import DataLoader, TensorDataset, MNIST, make_moons
"""

from .dataloader import DataLoader, default_collate
from .dataset import Dataset, Subset, TensorDataset, random_split
from .download import DataError, data_root
from .idx import read_idx
from .mnist import MNIST
from .synthetic import make_moons
from .tinystories import fetch_tinystories, load_stories, read_stories, split_stories, template_stories

__all__ = [
    "DataError",
    "DataLoader",
    "Dataset",
    "MNIST",
    "Subset",
    "TensorDataset",
    "data_root",
    "default_collate",
    "fetch_tinystories",
    "load_stories",
    "make_moons",
    "random_split",
    "read_idx",
    "read_stories",
    "split_stories",
    "template_stories",
]
