"""nn.ParameterList and nn.ParameterDict: registration under torch's names, list/dict
behaviour, conversion of plain tensors to Parameters, training through them, errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from helpers import assert_close, rand

import smolgrad as sg
from smolgrad import nn, optim


def t(*shape, seed=0, device="numpy"):
    return sg.tensor(rand(*shape, seed=seed), device=device)


class Mixer(nn.Module):
    """A model holding parameters in both containers, nested in a ModuleList."""

    def __init__(self):
        super().__init__()
        self.scales = nn.ParameterList([t(3, seed=1), t(3, seed=2)])
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 1)])
        self.extra = nn.ParameterDict({"shift": t(3, seed=3), "gain": t(1, seed=4)})
        self.blocks[0].table = nn.ParameterDict(OrderedDict([("z", t(3, seed=5)), ("a", t(3, seed=6))]))

    def forward(self, x):
        for s in self.scales:
            x = x * s
        x = self.blocks[0](x + self.extra["shift"]) * self.blocks[0].table["z"] + self.blocks[0].table["a"]
        return self.blocks[1](x.tanh()) * self.extra["gain"]


EXPECTED_KEYS = [
    "scales.0",
    "scales.1",
    "blocks.0.weight",
    "blocks.0.bias",
    "blocks.0.table.z",
    "blocks.0.table.a",
    "blocks.1.weight",
    "blocks.1.bias",
    "extra.gain",  # a plain dict's keys are added sorted, as torch does
    "extra.shift",
]


def test_state_dict_keys_follow_torchs_naming():
    model = Mixer()
    assert list(model.state_dict()) == EXPECTED_KEYS
    assert [name for name, _ in model.named_parameters()] == EXPECTED_KEYS
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    assert len(list(model.parameters())) == len(EXPECTED_KEYS)


def test_load_state_dict_round_trip_and_to(device, tmp_path):
    src, dst = Mixer(), Mixer()
    for p in dst.parameters():
        with sg.no_grad():
            p.mul_(0)
    path = tmp_path / "mixer.pt"
    sg.save(src.state_dict(), path)
    dst.load_state_dict(sg.load(path))
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    params_before = list(dst.parameters())
    dst.to(device)
    assert all(p.device == device for p in dst.parameters())
    assert [id(p) for p in dst.parameters()] == [id(p) for p in params_before]  # moved in place
    assert dst.scales[0] is params_before[0] and dst.extra["shift"] is params_before[-1]
    x = sg.tensor(rand(4, 3, seed=7), device=device)
    src.to(device)
    with sg.no_grad():
        assert_close(dst(x), src(x).numpy())


def test_an_optimizer_over_the_containers_trains(device):
    sg.manual_seed(0)
    model = Mixer().to(device)
    opt = optim.Adam(model.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((8, 3)).astype(np.float32), device=device)
    y = sg.tensor(rng.standard_normal((8, 1)).astype(np.float32), device=device)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        assert model.scales[1].grad is not None and model.blocks[0].table["a"].grad is not None
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_parameter_list_behaves_as_a_list(device):
    a, b, c = (t(2, seed=i, device=device) for i in range(3))
    p = nn.Parameter(t(2, 2, seed=9, device=device))
    pl = nn.ParameterList([a, p])
    assert len(pl) == 2
    assert isinstance(pl[0], nn.Parameter) and pl[0].requires_grad and pl[0].device == device
    assert_close(pl[0], a.numpy())
    assert pl[1] is p and pl[-1] is p  # a Parameter is kept as it is
    pl.append(b)
    pl.extend([c])
    pl += [sg.zeros(1, device=device)]
    assert len(pl) == 5 and [k for k, _ in pl.named_parameters()] == ["0", "1", "2", "3", "4"]
    assert_close(pl[2], b.numpy())
    pl.insert(1, c)
    assert len(pl) == 6 and pl[2] is p and list(pl.state_dict()) == [str(i) for i in range(6)]
    assert_close(pl[1], c.numpy())
    sliced = pl[1:5:2]
    assert isinstance(sliced, nn.ParameterList) and len(sliced) == 2
    assert sliced[0] is pl[1] and sliced[1] is pl[3]  # the same parameters, not copies
    assert len(pl[::-1]) == 6 and pl[::-1][0] is pl[5]
    assert [x is y for x, y in zip(pl, list(pl))] == [True] * 6
    pl[0] = t(3, seed=5, device=device)  # replaced, keeping its position
    assert pl[0].shape == (3,) and isinstance(pl[0], nn.Parameter) and len(pl) == 6
    assert pl[np.int64(2)] is p  # any index type as torch (operator.index)
    assert nn.ParameterList().__len__() == 0 and list(nn.ParameterList()) == []


def test_non_tensor_values_are_kept_as_torch_keeps_them():
    lin = nn.Linear(2, 2)
    pl = nn.ParameterList([t(2), "name", 3, lin])
    assert pl[1] == "name" and pl[2] == 3 and pl[3] is lin
    # a Module entry is registered (its parameters are found), plain values are not state
    assert list(pl.state_dict()) == ["0", "3.weight", "3.bias"]
    pl[1] = t(4)  # a plain value replaced by a tensor: registered from now on
    assert list(pl.state_dict()) == ["0", "1", "3.weight", "3.bias"]
    pd = nn.ParameterDict({"w": t(2), "n": None, "k": 1.5})
    assert pd["n"] is None and pd["k"] == 1.5 and list(pd.state_dict()) == ["w"]
    assert list(pd) == ["k", "n", "w"]
    assert "ParameterDict(\n  (k): Object of type: float" in repr(pd)
    assert "(0): Parameter containing: [float32 of size 2]" in repr(pl)


def test_parameter_dict_behaves_as_a_dict(device):
    a, b, c = (t(2, seed=i, device=device) for i in range(3))
    pd = nn.ParameterDict([("b", a), ("a", b)])  # pairs keep their order
    assert list(pd) == ["b", "a"] and list(pd.keys()) == ["b", "a"] and len(pd) == 2
    assert isinstance(pd["b"], nn.Parameter) and pd["b"].device == device
    assert_close(pd["b"], a.numpy())
    assert "a" in pd and "c" not in pd and 3 not in pd
    pd.update({"c": c, "a": c})  # replaces a in place, adds c at the end
    assert list(pd) == ["b", "a", "c"] and list(pd.state_dict()) == ["b", "a", "c"]
    assert_close(pd["a"], c.numpy())
    assert [k for k, _ in pd.items()] == ["b", "a", "c"]
    assert [v is pd[k] for k, v in zip(pd.keys(), pd.values())] == [True] * 3
    popped = pd.pop("a")
    assert isinstance(popped, nn.Parameter) and "a" not in pd and list(pd.state_dict()) == ["b", "c"]
    assert pd.get("a") is None and pd.get("b") is pd["b"]
    pd["d"] = nn.Parameter(b)
    assert pd.popitem()[0] == "d" and list(pd) == ["b", "c"]
    assert pd.setdefault("e", a) is pd["e"] and isinstance(pd["e"], nn.Parameter)
    del pd["e"]
    copy = pd.copy()
    assert list(copy) == ["b", "c"] and copy["b"] is pd["b"]
    merged = pd | nn.ParameterDict({"z": a})
    assert list(merged) == ["b", "c", "z"] and list(pd) == ["b", "c"]
    pd |= nn.ParameterDict({"z": a})
    assert list(pd) == ["b", "c", "z"]
    pd.update(nn.ParameterDict(OrderedDict([("y", a), ("x", b)])))
    assert list(pd)[-2:] == ["y", "x"]
    assert list(reversed(pd))[0] == "x"
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == [] and list(pd.state_dict()) == []


def test_parameter_list_errors():
    pl = nn.ParameterList([t(2)])
    with pytest.raises(IndexError, match="index 1 is out of range for a ParameterList of length 1"):
        pl[1]
    with pytest.raises(IndexError, match="index -2 is out of range"):
        pl[-2] = t(2)
    with pytest.raises(TypeError, match="ParameterList indices must be integers or slices, not str"):
        pl["0"]
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got Tensor"):
        pl.extend(t(2))
    with pytest.raises(TypeError, match="iterable, but got int"):
        nn.ParameterList(5)
    with pytest.raises(RuntimeError, match="floating point"):
        pl.append(sg.tensor([1, 2]))  # an integer tensor can't be a Parameter
    assert len(pl) == 1 and list(pl.state_dict()) == ["0"]  # nothing changed
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(t(2))


def test_parameter_dict_errors():
    pd = nn.ParameterDict({"w": t(2)})
    with pytest.raises(KeyError, match="ParameterDict has no key 'v'"):
        pd["v"]
    with pytest.raises(KeyError, match="no key 'v'"):
        pd.pop("v")
    with pytest.raises(KeyError, match="no key 'v'"):
        del pd["v"]
    with pytest.raises(TypeError, match="not a string \\(type is 'int'\\)"):
        pd[0] = t(2)
    with pytest.raises(TypeError, match="not a string"):
        pd[0]
    with pytest.raises(KeyError, match="contain"):
        pd["a.b"] = t(2)
    with pytest.raises(KeyError, match="attribute 'keys' already exists"):
        pd["keys"] = t(2)
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        pd.update({"training": t(2)})
    with pytest.raises(ValueError, match="element #1 has length 3; 2 is required"):
        pd.update([("a", t(2)), ("b", t(2), 1)])
    with pytest.raises(TypeError, match="element #0 should be a \\(key, value\\) pair; is int"):
        pd.update([1])
    with pytest.raises(TypeError, match="iterable of key/value pairs, but got int"):
        pd.update(3)
    with pytest.raises(KeyError, match="empty"):
        nn.ParameterDict().popitem()
    with pytest.raises(KeyError, match="contain"):  # a bad key in an update changes nothing
        pd.update({"ok": t(2), "b.c": t(2)})
    assert list(pd) == ["w"] and list(pd.state_dict()) == ["w"] and pd.training is True
    with pytest.raises(RuntimeError, match="ParameterDict should not be called"):
        pd(t(2))
