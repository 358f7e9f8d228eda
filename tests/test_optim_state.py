"""Optimizer construction, parameter groups, state dicts and their error messages."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.optim import SGD, Adam, AdamW


def params(device="numpy", shapes=((2, 3), (4,))):
    rng = np.random.default_rng(0)
    return [sg.tensor(rng.standard_normal(s).astype(np.float32), device=device, requires_grad=True) for s in shapes]


def set_grads(ps, seed):
    rng = np.random.default_rng(seed)
    for p in ps:
        p.grad = sg.tensor(rng.standard_normal(p.shape).astype(np.float32), device=p.device)


# --------------------------------------------------------------------------- construction
def test_defaults_fill_each_param_group():
    ps = params()
    opt = Adam([{"params": [ps[0]], "lr": 0.5}, {"params": [ps[1]]}], lr=0.1, betas=(0.8, 0.9))
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert all(g["betas"] == (0.8, 0.9) and g["eps"] == 1e-8 for g in opt.param_groups)


def test_add_param_group_optimizes_the_new_parameters():
    ps = params()
    opt = SGD([ps[0]], lr=0.1)
    opt.add_param_group({"params": ps[1], "lr": 1.0})
    before = ps[1].detach().numpy()
    ps[1].grad = sg.ones(4, device="numpy")
    opt.step()
    np.testing.assert_allclose(ps[1].detach().numpy(), before - 1.0)


def test_parameter_in_two_groups_is_rejected():
    ps = params()
    opt = SGD([ps[0]], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [ps[0], ps[1]]})


def test_duplicate_parameter_in_one_group_is_rejected():
    ps = params()
    with pytest.raises(ValueError, match="appears twice"):
        SGD([ps[0], ps[0]], lr=0.1)


def test_empty_parameter_list_is_rejected():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=0.1)


def test_single_tensor_instead_of_a_list_is_rejected():
    with pytest.raises(TypeError, match="wrap it in a list"):
        SGD(params()[0], lr=0.1)


def test_set_of_parameters_is_rejected():
    with pytest.raises(TypeError, match="use a list"):
        SGD([{"params": set(params())}], lr=0.1)


def test_non_leaf_tensor_is_rejected():
    p = params()[0]
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)


def test_integer_tensor_is_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        SGD([sg.tensor([1, 2])], lr=0.1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: SGD(ps, lr=-1.0), "Invalid learning rate"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), "Invalid momentum"),
        (lambda ps: SGD(ps, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda ps: Adam(ps, eps=-1e-8), "Invalid epsilon"),
        (lambda ps: AdamW(ps, weight_decay=-0.1), "Invalid weight_decay"),
        (lambda ps: Adam([{"params": ps, "lr": -0.1}]), "Invalid learning rate"),
    ],
)
def test_invalid_hyperparameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(params())


def test_grad_on_another_device_is_a_clear_error(webgpu):
    p = params("numpy")[0]
    opt = SGD([p], lr=0.1)
    p.grad = sg.ones(p.shape, device=webgpu)
    with pytest.raises(RuntimeError, match="grad of parameter 0 of parameter group 0 is on device webgpu"):
        opt.step()


def test_grad_of_another_dtype_is_a_clear_error():
    p = params()[0]
    opt = Adam([p], lr=0.1)
    p.grad = sg.ones(p.shape, dtype=sg.float64, device="numpy")
    with pytest.raises(RuntimeError, match="dtype float64 but the parameter has dtype float32"):
        opt.step()


def test_failed_step_changes_nothing():
    ps = params()
    opt = Adam(ps, lr=0.1)
    before = [p.detach().numpy() for p in ps]
    ps[0].grad = sg.ones(ps[0].shape, device="numpy")
    ps[1].grad = sg.ones(3, device="numpy")  # wrong shape
    with pytest.raises(RuntimeError, match="shape"):
        opt.step()
    assert opt.state == {}
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.detach().numpy(), b)


def test_repr_lists_the_group_options():
    text = repr(SGD(params(), lr=0.1, momentum=0.9))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text


# --------------------------------------------------------------------------- state dicts
def test_state_dict_has_pytorch_layout():
    ps = params()
    opt = Adam([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.5}], lr=0.1)
    set_grads(ps, 1)
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert set(sd["state"]) == {0, 1}
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and sd["state"][0]["step"] == 1
    assert sd["state"][1]["exp_avg"].shape == (4,)


def test_state_dict_is_a_snapshot():
    ps = params()
    opt = SGD(ps, lr=0.1, momentum=0.9)
    set_grads(ps, 1)
    opt.step()
    sd = opt.state_dict()
    saved = sd["state"][0]["momentum_buffer"].numpy()
    set_grads(ps, 2)
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"].numpy(), saved)
    sd["param_groups"][0]["lr"] = 99.0
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize(
    "make",
    [lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), lambda ps: Adam(ps, lr=0.1, amsgrad=True), AdamW],
    ids=["sgd", "adam", "adamw"],
)
def test_load_state_dict_resumes_exactly(device, make):
    a = params(device)
    opt_a = make(a)
    for seed in (1, 2):
        set_grads(a, seed)
        opt_a.step()
    b = [sg.tensor(p.detach().numpy(), device=device, requires_grad=True) for p in a]
    opt_b = make(b)
    opt_b.load_state_dict(opt_a.state_dict())
    for seed in (3, 4):
        set_grads(a, seed)
        set_grads(b, seed)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


def test_load_state_dict_takes_the_saved_options():
    ps = params()
    opt = SGD(ps, lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.01
    fresh = SGD(params(), lr=0.5)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.01


def test_load_state_dict_moves_state_to_the_parameter_device(webgpu):
    a = params("numpy")
    opt_a = Adam(a, lr=0.1)
    set_grads(a, 1)
    opt_a.step()
    b = params(webgpu)
    opt_b = Adam(b, lr=0.1)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.state[b[0]]["exp_avg"].device == webgpu
    set_grads(b, 2)
    opt_b.step()
    assert opt_b.state[b[0]]["step"] == 2


def test_load_state_dict_rejects_a_different_number_of_groups():
    ps = params()
    sd = SGD([{"params": [ps[0]]}, {"params": [ps[1]]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="2 parameter groups, but SGD has 1"):
        SGD(params(), lr=0.1).load_state_dict(sd)


def test_load_state_dict_rejects_a_group_of_another_size():
    sd = SGD(params()[:1], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters in the loaded state dict but 2"):
        SGD(params(), lr=0.1).load_state_dict(sd)


def test_load_state_dict_rejects_state_of_another_shape():
    a = params(shapes=((2, 3), (4,)))
    opt = Adam(a, lr=0.1)
    set_grads(a, 1)
    opt.step()
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 1 has shape \(4,\) but the parameter has shape \(5,\)"):
        Adam(params(shapes=((2, 3), (5,))), lr=0.1).load_state_dict(opt.state_dict())


def test_load_state_dict_rejects_another_optimizer_class():
    a = params()
    sgd = SGD(a, lr=0.1, momentum=0.9)
    set_grads(a, 1)
    sgd.step()
    with pytest.raises(ValueError, match="different optimizer"):
        Adam(params(), lr=0.1).load_state_dict(sgd.state_dict())


def test_load_state_dict_rejects_state_for_an_unknown_index():
    sd = SGD(params(), lr=0.1, momentum=0.9).state_dict()
    sd["state"][7] = {"momentum_buffer": sg.zeros(4)}
    with pytest.raises(ValueError, match="parameter index 7"):
        SGD(params(), lr=0.1, momentum=0.9).load_state_dict(sd)


def test_load_state_dict_rejects_a_dict_without_the_two_keys():
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        SGD(params(), lr=0.1).load_state_dict({"state": {}})


def test_failed_load_state_dict_changes_nothing():
    a = params()
    opt = SGD(a, lr=0.1, momentum=0.9)
    set_grads(a, 1)
    opt.step()
    groups_before = [dict(g) for g in opt.param_groups]
    state_before = dict(opt.state)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    sd["state"][1]["momentum_buffer"] = sg.zeros(9)  # wrong shape: fails after group 0 was read
    with pytest.raises(ValueError):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == groups_before[0]["lr"] == 0.1
    assert len(opt.state) == len(state_before) and all(opt.state[p] is s for p, s in state_before.items())


def test_optimizer_trains_an_nn_linear_model(device):
    from smolgrad import nn

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 2)) + 0.5).astype(np.float32)
    model = nn.Linear(4, 2).to(device)
    xs, ys = sg.tensor(x, device=device), sg.tensor(y, device=device)
    opt = AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = ((model(xs) - ys) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-2 * losses[0], losses[::25]
