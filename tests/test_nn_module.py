"""nn.Module machinery: registration, traversal, modes, zero_grad, state dicts, to(),
buffers, apply, repr; Parameter; Sequential, ModuleList, ModuleDict."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import nn
from helpers import assert_close


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(sg.ones(4))
        self.register_buffer("steps", sg.zeros(()))
        self.register_buffer("cache", sg.zeros(2), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.head(self.block(x))


# ----- Parameter -----


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(sg.zeros(2, 3))
    assert isinstance(p, sg.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(sg.zeros(2), requires_grad=False).requires_grad


def test_parameter_shares_the_value_of_its_data():
    t = sg.tensor([1.0, 2.0]).realize()
    assert nn.Parameter(t).lazydata is t.lazydata


def test_parameter_ops_return_plain_tensors():
    out = nn.Parameter(sg.ones(2)) * 2
    assert type(out) is sg.Tensor


def test_parameter_repr():
    assert repr(nn.Parameter(sg.tensor([1.0, 2.0]))) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"


# ----- registration and traversal -----


def test_named_parameters_in_registration_order():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.weight"]


def test_parameters_are_the_registered_objects():
    net = Net()
    assert list(net.parameters())[0] is net.block.scale


def test_shared_parameter_is_listed_once():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    seq = nn.Sequential(a, b)
    assert len(list(seq.parameters())) == 3


def test_named_modules_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "head"]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert list(net.children()) == [net.block, net.head]
    assert len(list(net.modules())) == 5


def test_named_buffers_and_non_persistent_buffers():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == ["block.steps", "block.cache"]
    assert "block.cache" not in net.state_dict()


def test_assigning_none_to_a_parameter_keeps_the_slot():
    lin = nn.Linear(2, 2)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_assigning_a_tensor_to_a_parameter_name_raises():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        lin.weight = sg.zeros(2, 2)


def test_assigning_before_super_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_unknown_attribute_error_names_the_class():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        nn.Linear(1, 1).wieght


def test_delattr_removes_a_registered_module():
    net = Net()
    del net.head
    assert [n for n, _ in net.named_children()] == ["block"]


def test_get_submodule():
    net = Net()
    assert net.get_submodule("block.fc") is net.block.fc
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("block.nope")


def test_call_runs_forward():
    net = Net()
    x = sg.randn(5, 3)
    assert_close(net(x), net.forward(x).detach().numpy())


def test_missing_forward_raises():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_apply_visits_children_before_parent():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Block", "Linear", "Net"]


# ----- modes and gradients -----


def test_train_and_eval_set_training_recursively():
    net = Net()
    assert net.training and net.block.fc.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_sets_to_none_by_default():
    net = Net()
    net(sg.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_zero_grad_set_to_none_false_gives_zeros():
    lin = nn.Linear(2, 1)
    lin(sg.randn(3, 2)).sum().backward()
    lin.zero_grad(set_to_none=False)
    assert_close(lin.weight.grad, np.zeros((1, 2), np.float32))


def test_requires_grad_false_freezes_parameters():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


# ----- state_dict / load_state_dict -----


def test_state_dict_keys_and_values():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["block.scale", "block.steps", "block.fc.weight", "block.fc.bias", "head.weight"]  # like torch
    assert not sd["block.fc.weight"].requires_grad
    np.testing.assert_array_equal(sd["head.weight"].numpy(), net.head.weight.detach().numpy())


def test_load_state_dict_round_trip_copies_values_and_keeps_identity():
    src, dst = Net(), Net()
    w = dst.block.fc.weight
    dst.load_state_dict(src.state_dict())
    assert dst.block.fc.weight is w
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_load_state_dict_accepts_numpy_arrays():
    lin = nn.Linear(2, 1)
    lin.load_state_dict({"weight": np.array([[1.0, 2.0]]), "bias": np.array([3.0])})
    assert_close(lin(sg.tensor([[1.0, 1.0]])), np.array([[6.0]], np.float32))


def test_load_state_dict_strict_names_missing_and_unexpected_keys():
    sd = Net().state_dict()
    del sd["head.weight"]
    sd["head.bias"] = sg.zeros(2)
    with pytest.raises(RuntimeError) as info:
        Net().load_state_dict(sd)
    msg = str(info.value)
    assert 'Missing key(s) in state_dict: "head.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "head.bias"' in msg


def test_load_state_dict_non_strict_returns_the_keys():
    sd = Net().state_dict()
    del sd["head.weight"]
    sd["extra"] = sg.zeros(1)
    result = Net().load_state_dict(sd, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["extra"]


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    sd = Net().state_dict()
    sd["head.weight"] = sg.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.weight: copying a param with shape \(3, 4\).*\(2, 4\)"):
        Net().load_state_dict(sd, strict=False)


def test_load_state_dict_leaves_model_untouched_on_error():
    net = Net()
    before = net.head.weight.detach().numpy().copy()
    sd = Net().state_dict()
    sd["block.fc.weight"] = sg.zeros(9, 9)
    with pytest.raises(RuntimeError):
        net.load_state_dict(sd)
    np.testing.assert_array_equal(net.head.weight.detach().numpy(), before)


def test_state_dict_then_training_step_does_not_change_saved_values():
    lin = nn.Linear(2, 2)
    saved = lin.state_dict()["weight"].numpy().copy()
    with sg.no_grad():
        lin.weight.copy_(lin.weight * 2)
    np.testing.assert_array_equal(lin.state_dict()["weight"].numpy(), saved * 2)


# ----- to(), dtypes, devices -----


def test_to_double_converts_floating_parameters_in_place():
    net = Net()
    w = net.head.weight
    net.double()
    assert net.head.weight is w and w.dtype == sg.float64
    assert net(sg.randn(2, 3, dtype=sg.float64)).dtype == sg.float64


def test_to_device_moves_parameters_buffers_and_grads(webgpu):
    net = Net()
    net(sg.randn(2, 3)).sum().backward()
    w = net.head.weight
    net.to(webgpu)
    assert net.head.weight is w
    assert all(p.device == webgpu for p in net.parameters())
    assert all(b.device == webgpu for b in net.buffers())
    assert all(p.grad.device == webgpu for p in net.parameters())
    assert net(sg.randn(2, 3, device=webgpu)).shape == (2, 2)


def test_to_integer_dtype_raises():
    with pytest.raises(TypeError, match="floating point"):
        Net().to(sg.int64)


# ----- repr -----


def test_repr_is_nested_like_torch():
    assert repr(Net()) == (
        "Net(\n"
        "  (block): Block(\n"
        "    (fc): Linear(in_features=3, out_features=4, bias=True)\n"
        "    (act): ReLU()\n"
        "  )\n"
        "  (head): Linear(in_features=4, out_features=2, bias=False)\n"
        ")"
    )


# ----- containers -----


def test_sequential_runs_in_order_and_indexes():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = sg.randn(2, 3)
    assert_close(seq(x), seq[2](seq[1](seq[0](x))).detach().numpy())
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2


def test_sequential_from_ordered_dict_uses_names():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]
    assert seq.fc is seq[0]


def test_sequential_setitem_keeps_position_and_append():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh())
    seq[0] = nn.Sigmoid()
    seq.append(nn.ReLU())
    assert [type(m).__name__ for m in seq] == ["Sigmoid", "Tanh", "ReLU"]


def test_sequential_index_out_of_range_raises():
    with pytest.raises(IndexError, match="out of range"):
        nn.Sequential(nn.ReLU())[3]


def test_module_list_registers_parameters():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(layers.parameters())) == 6
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]


def test_module_list_insert_delete_and_extend_renumber():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    ml = nn.ModuleList([a, c])
    ml.insert(1, b)
    assert list(ml) == [a, b, c] and list(ml._modules) == ["0", "1", "2"]
    del ml[0]
    assert list(ml) == [b, c] and list(ml._modules) == ["0", "1"]
    ml += [a]
    assert ml[-1] is a and len(ml) == 3


def test_module_dict_behaves_like_a_dict():
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.ReLU()})
    assert list(md.keys()) == ["enc", "act"] and "enc" in md and len(md) == 2
    md["act"] = nn.Tanh()
    assert list(md) == ["enc", "act"] and isinstance(md["act"], nn.Tanh)
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias"]
    with pytest.raises(KeyError, match="no key 'dec'"):
        md["dec"]


def test_container_repr():
    assert repr(nn.Sequential(nn.ReLU(), nn.ModuleList([nn.Tanh()]))) == (
        "Sequential(\n  (0): ReLU()\n  (1): ModuleList(\n    (0): Tanh()\n  )\n)"
    )


def test_reassigning_a_parameter_keeps_its_position():
    lin = nn.Linear(2, 2)
    lin.weight = nn.Parameter(sg.zeros(2, 2))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]


def test_register_buffer_over_an_existing_attribute_raises():
    lin = nn.Linear(2, 2)
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        lin.register_buffer("weight", sg.zeros(2))


def test_sequential_delete_renumbers():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    seq = nn.Sequential(a, b, c)
    del seq[0]
    assert list(seq._modules) == ["0", "1"] and seq[0] is b
