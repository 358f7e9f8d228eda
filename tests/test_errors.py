"""Bad input raises an error that names the op, the shapes or values, and the fix."""

import numpy as np
import pytest

import smolgrad as sg


def test_broadcast_mismatch_names_op_and_shapes(device):
    a, b = sg.ones(2, 3, device=device), sg.ones(4, device=device)
    with pytest.raises(RuntimeError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        a + b


def test_dim_out_of_range_names_op_and_range(device):
    x = sg.ones(2, 3, device=device)
    with pytest.raises(IndexError, match=r"sum: dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        x.sum(2)
    with pytest.raises(IndexError, match="softmax|amax"):
        x.softmax(5)


def test_matmul_shape_mismatch(device):
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be multiplied \(2x3 and 4x5\)"):
        sg.ones(2, 3, device=device) @ sg.ones(4, 5, device=device)


def test_matmul_of_integer_tensors_is_refused(device):
    with pytest.raises(TypeError, match="floating point"):
        sg.tensor([[1, 2]], device=device) @ sg.tensor([[1], [2]], device=device)


def test_bad_reshape(device):
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        sg.ones(2, 3, device=device).reshape(4, 2)


def test_view_that_needs_a_copy_suggests_reshape(device):
    with pytest.raises(RuntimeError, match="Use .reshape"):
        sg.tensor(np.ones((2, 3), np.float32), device=device).T.view(6)


def test_bad_permute(device):
    with pytest.raises(RuntimeError, match="not a permutation"):
        sg.ones(2, 3, device=device).permute(0, 0)


def test_expand_of_non_singleton(device):
    with pytest.raises(RuntimeError, match="expand"):
        sg.ones(2, 3, device=device).expand(4, 3)


def test_index_out_of_range(device):
    x = sg.ones(3, 4, device=device)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]


def test_integer_tensor_index_out_of_range(device):
    w = sg.ones(5, 2, device=device)
    with pytest.raises(IndexError, match="out of bounds"):
        w[sg.tensor([0, 5], device=device)]
    with pytest.raises(IndexError, match="out of bounds"):
        w.gather(0, sg.tensor([[7, 0]], device=device))


def test_float_index_is_refused(device):
    with pytest.raises(IndexError, match="integer"):
        sg.ones(3, device=device)[sg.tensor([0.0], device=device)]


def test_failed_op_leaves_inputs_usable(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device)
    with pytest.raises(RuntimeError):
        x + sg.ones(2, device=device)
    assert (x * 2).tolist() == [2.0, 4.0, 6.0]


def test_mean_of_integers_asks_for_float(device):
    with pytest.raises(RuntimeError, match=r"\.float\(\)"):
        sg.tensor([1, 2], device=device).mean()


def test_cat_size_mismatch_names_tensor(device):
    with pytest.raises(RuntimeError, match="tensor number 1"):
        sg.cat([sg.ones(2, 3, device=device), sg.ones(2, 4, device=device)], 0)


def test_too_many_elements_is_refused_before_allocating():
    with pytest.raises(ValueError, match="2\\^31"):
        sg.zeros(2**16, 2**16, device="numpy")


def test_unknown_dtype_name():
    with pytest.raises(TypeError, match="unsupported dtype"):
        sg.zeros(2, dtype="complex64")


def test_requires_grad_backward_through_int_is_refused():
    with pytest.raises(RuntimeError, match="floating point"):
        sg.tensor(np.array([1, 2]), requires_grad=True)
