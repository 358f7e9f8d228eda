"""smolgrad.data: Dataset, TensorDataset, DataLoader, default_collate, make_moons."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, make_moons, random_split


def numbered(n: int) -> TensorDataset:
    """Sample i is (x = [i, -i] as float32, y = i)."""
    i = np.arange(n)
    return TensorDataset(np.stack([i, -i], axis=1).astype(np.float32), i)


def epoch_labels(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y.numpy()]


# ----- Dataset, TensorDataset, Subset, random_split -----

def test_tensor_dataset_returns_rows_of_each_array():
    ds = numbered(5)
    x, y = ds[3]
    assert len(ds) == 5
    np.testing.assert_array_equal(x, [3.0, -3.0])
    assert y == 3


def test_tensor_dataset_accepts_smolgrad_tensors():
    ds = TensorDataset(sg.arange(6, device="numpy").reshape(3, 2), sg.tensor([7, 8, 9], device="numpy"))
    x, y = ds[1]
    np.testing.assert_array_equal(x, [2, 3])
    assert y == 8


def test_tensor_dataset_rejects_different_lengths():
    with pytest.raises(ValueError, match="same size in dim 0"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_dataset_base_class_says_what_to_define():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


def test_subset_maps_indices_in_order():
    sub = Subset(numbered(10), [7, 2])
    assert len(sub) == 2
    assert [sub[0][1], sub[1][1]] == [7, 2]


def test_random_split_partitions_the_dataset():
    parts = random_split(numbered(10), [3, 7], generator=0)
    labels = [[p[i][1] for i in range(len(p))] for p in parts]
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(labels[0] + labels[1]) == list(range(10))


def test_random_split_accepts_fractions():
    parts = random_split(numbered(10), [0.25, 0.75], generator=0)
    assert [len(p) for p in parts] == [3, 7]


def test_random_split_rejects_lengths_that_do_not_sum_to_the_size():
    with pytest.raises(ValueError, match="sum to the data set's length 10"):
        random_split(numbered(10), [3, 3])


# ----- DataLoader -----

def test_dataloader_batches_in_order_without_shuffle():
    batches = list(DataLoader(numbered(10), batch_size=4, device="numpy"))
    assert [x.shape for x, _ in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(batches[1][0].numpy(), [[4, -4], [5, -5], [6, -6], [7, -7]])
    np.testing.assert_array_equal(batches[2][1].numpy(), [8, 9])


def test_dataloader_len_counts_the_partial_last_batch():
    assert len(DataLoader(numbered(10), batch_size=4)) == 3
    assert len(DataLoader(numbered(8), batch_size=4)) == 2


def test_dataloader_drop_last_drops_the_partial_batch():
    loader = DataLoader(numbered(10), batch_size=4, drop_last=True, device="numpy")
    assert len(loader) == 2
    assert epoch_labels(loader) == list(range(8))


def test_dataloader_shuffle_visits_every_sample_once():
    labels = epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, generator=0, device="numpy"))
    assert sorted(labels) == list(range(50))
    assert labels != list(range(50))


def test_dataloader_shuffle_with_the_same_seed_gives_the_same_order():
    first = epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, generator=123, device="numpy"))
    second = epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, generator=123, device="numpy"))
    assert first == second


def test_dataloader_shuffle_with_different_seeds_gives_different_orders():
    first = epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, generator=1, device="numpy"))
    second = epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, generator=2, device="numpy"))
    assert first != second


def test_dataloader_shuffle_draws_a_new_order_each_epoch():
    loader = DataLoader(numbered(50), batch_size=8, shuffle=True, generator=0, device="numpy")
    assert epoch_labels(loader) != epoch_labels(loader)


def test_dataloader_shuffle_without_generator_follows_manual_seed():
    def run():
        sg.manual_seed(7)
        return epoch_labels(DataLoader(numbered(50), batch_size=8, shuffle=True, device="numpy"))

    assert run() == run()


def test_dataloader_accepts_a_numpy_generator():
    a = epoch_labels(DataLoader(numbered(20), shuffle=True, generator=np.random.default_rng(5), device="numpy"))
    b = epoch_labels(DataLoader(numbered(20), shuffle=True, generator=np.random.default_rng(5), device="numpy"))
    assert a == b


def test_dataloader_shuffle_with_drop_last_yields_only_full_batches():
    loader = DataLoader(numbered(10), batch_size=4, shuffle=True, drop_last=True, generator=0, device="numpy")
    batches = list(loader)
    assert [y.shape for _, y in batches] == [(4,), (4,)]
    labels = [int(v) for _, y in batches for v in y.numpy()]
    assert len(set(labels)) == 8


def test_dataloader_puts_batches_on_the_requested_device(device):
    x, y = next(iter(DataLoader(numbered(6), batch_size=3, device=device)))
    assert x.device == device and y.device == device
    np.testing.assert_array_equal(x.numpy(), [[0, 0], [1, -1], [2, -2]])


def test_dataloader_uses_a_custom_collate_fn():
    loader = DataLoader(numbered(5), batch_size=2, collate_fn=lambda samples: [int(y) for _, y in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("bad", [0, -1, 2.5, None, True])
def test_dataloader_rejects_a_batch_size_that_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(numbered(5), batch_size=bad)


def test_dataloader_rejects_an_unknown_generator_type():
    with pytest.raises(TypeError, match="generator must be None, an int seed, a smolgrad.Generator or a numpy.random.Generator"):
        DataLoader(numbered(5), shuffle=True, generator="seed")


# ----- default_collate -----

def test_default_collate_keeps_numpy_dtypes():
    ints = default_collate([np.array([1, 2], dtype=np.int32), np.array([3, 4], dtype=np.int32)], device="numpy")
    doubles = default_collate([np.float64(0.5), np.float64(1.5)], device="numpy")
    assert (ints.dtype, ints.shape) == (sg.int32, (2, 2))
    assert (doubles.dtype, doubles.shape) == (sg.float64, (2,))
    np.testing.assert_array_equal(ints.numpy(), [[1, 2], [3, 4]])


def test_default_collate_turns_python_ints_into_int64_and_floats_into_float32():
    assert default_collate([1, 2, 3], device="numpy").dtype == sg.int64
    assert default_collate([0.5, 1.5], device="numpy").dtype == sg.float32
    assert default_collate([True, False], device="numpy").dtype == sg.bool


def test_default_collate_collates_tuples_dicts_and_strings_field_by_field():
    batch = default_collate(
        [({"a": np.float32(1.0)}, "x"), ({"a": np.float32(2.0)}, "y")], device="numpy"
    )
    assert isinstance(batch, tuple) and batch[1] == ["x", "y"]
    np.testing.assert_array_equal(batch[0]["a"].numpy(), [1.0, 2.0])


def test_default_collate_stacks_smolgrad_tensors():
    batch = default_collate([sg.tensor([1.0, 2.0], device="numpy"), sg.tensor([3.0, 4.0], device="numpy")])
    np.testing.assert_array_equal(batch.numpy(), [[1, 2], [3, 4]])


def test_default_collate_rejects_samples_of_different_shapes():
    with pytest.raises(RuntimeError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)], device="numpy")


def test_default_collate_rejects_unknown_sample_types():
    with pytest.raises(TypeError, match="pass a collate_fn"):
        default_collate([object(), object()])


# ----- make_moons -----

def test_make_moons_shapes_dtypes_and_classes():
    X, y = make_moons(101, noise=0.1, random_state=0)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert (np.sum(y == 0), np.sum(y == 1)) == (50, 51)


def test_make_moons_matches_scikit_learn():
    # sklearn.datasets.make_moons(n_samples=4, noise=0.1, random_state=0), scikit-learn 1.7
    X, y = make_moons(4, noise=0.1, random_state=0)
    expected = [[0.09787379841057392, 0.7240893199201458], [2.1867557990149966, 0.4022722120123588],
                [-0.904991158247441, -0.015135720829769666], [0.9896781148206442, 0.04105985019383723]]
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-12)
    assert y.tolist() == [1, 1, 0, 0]


def test_make_moons_without_noise_lies_on_the_two_half_circles():
    X, y = make_moons(40, shuffle=False)
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0)
    assert (outer[:, 1] >= 0).all() and (inner[:, 1] <= 0.5).all()


def test_make_moons_is_reproducible_with_a_random_state():
    a, b = make_moons(30, noise=0.2, random_state=5), make_moons(30, noise=0.2, random_state=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_make_moons_takes_a_pair_of_moon_sizes():
    _, y = make_moons((3, 7), random_state=0)
    assert (np.sum(y == 0), np.sum(y == 1)) == (3, 7)


def test_make_moons_rejects_negative_sample_counts():
    with pytest.raises(ValueError, match="non-negative"):
        make_moons(-1)
