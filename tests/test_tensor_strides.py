"""Tensor.stride, storage_offset and is_contiguous report what torch reports: a view's
place in its base's storage (checked against NumPy's views of the same array), C order for
computed tensors."""

import numpy as np
import pytest

import smolgrad as sg

# (name, the view on smolgrad, the same view on NumPy)
VIEWS = [
    ("itself", lambda x: x, lambda a: a),
    ("transpose", lambda x: x.transpose(0, 2), lambda a: a.transpose(2, 1, 0)),
    ("slice", lambda x: x[:, 1:], lambda a: a[:, 1:]),
    ("index", lambda x: x[1], lambda a: a[1]),
    ("middle index", lambda x: x[:, 0, :], lambda a: a[:, 0, :]),
    ("steps", lambda x: x[::2, ::2, 1::3], lambda a: a[::2, ::2, 1::3]),
    ("expand", lambda x: x[:, :1].expand(2, 5, 4), lambda a: np.broadcast_to(a[:, :1], (2, 5, 4))),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda a: a[:, None]),
    ("permute", lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ("reshape then slice", lambda x: x.reshape(6, 4)[2:5], lambda a: a.reshape(6, 4)[2:5]),
    ("narrow", lambda x: x.narrow(2, 1, 2), lambda a: a[:, :, 1:3]),
    ("size-1 slice", lambda x: x[:, 1:2, :], lambda a: a[:, 1:2, :]),
    ("view then t", lambda x: x.view(4, 6).t(), lambda a: a.reshape(4, 6).T),
    ("element", lambda x: x[0, 1, 2], lambda a: a[0, 1, 2, ...]),
]


@pytest.mark.parametrize("name, view, ref", VIEWS, ids=[v[0] for v in VIEWS])
def test_views_report_numpy_strides_offsets_and_contiguity(device, name, view, ref):
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    got = view(sg.tensor(base, device=device))
    want = ref(base)
    item = base.itemsize
    strides = tuple(s // item for s in want.strides)
    if name == "unsqueeze":  # (any stride fits a size-1 dim; torch's is the next dim's size * stride)
        strides = (12, 12, 4, 1)
    assert got.stride() == strides
    offset = (want.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    assert got.storage_offset() == offset
    assert got.is_contiguous() == want.flags.c_contiguous
    np.testing.assert_array_equal(got.numpy(), want)


def test_computed_tensors_are_contiguous_in_c_order(device):
    x = sg.arange(24.0, device=device).reshape(2, 3, 4)
    for t in (x * 2, x.transpose(1, 2).contiguous(), x.flatten(), x.sum(1)):
        want = np.empty(t.shape, np.float32)
        assert t.stride() == tuple(s // 4 for s in want.strides) and t.storage_offset() == 0 and t.is_contiguous()
    assert x.stride(0) == 12 and x.stride(-1) == 1
    assert x[:, :, :0].is_contiguous()  # (empty)
    assert sg.tensor(3.0).stride() == () and sg.tensor(3.0).is_contiguous()


def test_bad_arguments():
    with pytest.raises(IndexError):
        sg.zeros(2, 3).stride(2)
    with pytest.raises(IndexError, match="no dimensions"):
        sg.tensor(1.0).stride(0)
    with pytest.raises(NotImplementedError, match="only C order"):
        sg.zeros(2).is_contiguous(memory_format="channels_last")
