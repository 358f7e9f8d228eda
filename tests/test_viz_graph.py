"""smolgrad.viz.graph: the autograd graph and the fused kernels behind a tensor, as DOT."""

import re
import sys

import pytest

import smolgrad as sg
from smolgrad import nn
from smolgrad.viz import graph


def mlp(device):
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).to(device)
    sg.realize(*model.parameters())
    x = sg.randn(4, 3, device=device).realize()
    return model, x


def labels(source):
    return re.findall(r'\[label="((?:[^"\\]|\\.)*)"', source)


def clusters(source):
    """{kernel title: [op labels]} from the DOT's subgraphs."""
    out = {}
    for title, body in re.findall(r'subgraph cluster_k\d+ \{\n\s*label="([^"]*)";[^\n]*\n(.*?)\n\s*\}', source, re.S):
        out[title] = [lab.split("\\n")[0].split(" = ")[-1] for lab in labels(body) if "\\n" in lab]
    return out


def test_the_autograd_graph_of_an_mlp_names_its_ops_shapes_leaves_and_saved_tensors(device):
    model, x = mlp(device)
    loss = model(x).relu().sum()
    sg.reset_stats()
    g = graph(loss, params=dict(model.named_parameters()))
    assert sg.stats()["dispatches"] == 0  # drawing runs nothing
    found = labels(g.source)
    for expected in ["LinearBackward\\n(4, 5)", "ReluBackward\\n(4, 5)", "LinearBackward\\n(4, 2)",
                     "ReluBackward\\n(4, 2)", "SumBackward", "0.weight\\n(5, 3) float32", "0.bias\\n(5) float32",
                     "2.weight\\n(2, 5) float32", "2.bias\\n(2) float32", "saved: 2.weight\\n(2, 5)",
                     "output () float32"]:
        assert any(lab.startswith(expected) for lab in found), (expected, found)
    # every edge joins declared nodes; each parameter feeds exactly one op
    declared = set(re.findall(r"^\s*(\w+) \[label", g.source, re.M))
    edges = re.findall(r"^\s*(\w+) -> (\w+)", g.source, re.M)
    assert edges and all(a in declared and b in declared for a, b in edges)
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        (nid,) = re.findall(rf'^\s*(\w+) \[label="{re.escape(name)}\\n', g.source, re.M)
        assert sum(a == nid for a, _ in edges) == 1
    assert g.source.count("{") == g.source.count("}")


def test_a_graph_after_backward_says_its_buffers_were_freed_and_unnamed_leaves_show_their_shape():
    w = sg.randn(2, 3, requires_grad=True)
    y = (w * 2).exp().sum()
    assert "MulBackward" in graph(y).source and "(2, 3) float32" in graph(y).source
    y.backward()
    assert "(freed by backward)" in graph(y).source
    assert "no autograd history" in graph(sg.ones(2)).source


def test_the_kernel_grouping_matches_the_smolgrad_debug_kernel_list(device, monkeypatch, capsys):
    model, x = mlp(device)
    out = (model(x).tanh() * 2 + 1).square().mean()
    sg.reset_stats()
    g = graph(out, params=dict(model.named_parameters()), kernels=True)
    assert sg.stats()["dispatches"] == 0
    drawn = [k.name for k in g.kernels]
    assert len(drawn) >= 3
    capsys.readouterr()
    monkeypatch.setenv("SMOLGRAD_DEBUG", "1")
    out.realize()
    logged = re.findall(r"^\[smolgrad \w+\] (\S+)\s+ops=(\S+)", capsys.readouterr().err, re.M)
    assert [name for name, _ in logged] == drawn
    # each box holds exactly the ops the kernel runs
    boxes = clusters(g.source)
    assert list(boxes) == [f"kernel {i}: {name}" for i, name in enumerate(drawn)]
    for (title, ops), (_, logged_ops) in zip(boxes.items(), logged):
        assert sorted(ops) == sorted(logged_ops.split(",")), title
    # the parameters are named where they are read
    assert "0.weight\\n(5, 3) float32" in g.source and "2.bias\\n(2) float32" in g.source


def test_the_backward_kernels_of_a_gradient_can_be_drawn_before_they_run(device):
    model, x = mlp(device)
    model(x).square().mean().backward()
    grad = model[0].weight.grad
    g = graph(grad, kernels=True)
    assert g.kernels and any(k.kind == "matmul" for k in g.kernels)
    expected = grad.numpy()  # drawing did not disturb computing it
    assert expected.shape == (5, 3)
    assert graph(grad, kernels=True).kernels == []  # computed now: nothing left to schedule


def test_save_writes_dot_and_render_explains_what_graphviz_needs(tmp_path, monkeypatch):
    w = sg.randn(2, requires_grad=True)
    g = graph((w * w).sum(), params={"w": w})
    assert g.save(tmp_path / "g.dot").read_text() == g.source
    assert g.render(tmp_path / "g.gv").read_text() == g.source
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"g\.svg needs Graphviz: install the Python package \(pip install graphviz\)"):
        g.render(tmp_path / "g.svg")
    with pytest.raises(ValueError, match=r"'g\.txt'.*\.dot, \.gv, \.svg, \.png or \.pdf"):
        g.render(tmp_path / "g.txt")


def test_render_draws_svg_where_graphviz_is_installed(tmp_path):
    pytest.importorskip("graphviz", reason="the graphviz package is not installed")
    import shutil
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="`dot` program is not on PATH"):
            graph(sg.randn(2, requires_grad=True).sum()).render(tmp_path / "g.svg")
        return
    path = graph(sg.randn(2, requires_grad=True).sum()).render(tmp_path / "g.svg")
    assert path.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_bad_arguments_are_refused_with_what_to_pass():
    with pytest.raises(TypeError, match="viz.graph: expected a Tensor, got list"):
        graph([1, 2])
    with pytest.raises(TypeError, match=r"params\['w'\] is a int.*named_parameters"):
        graph(sg.ones(2), params={"w": 3})
