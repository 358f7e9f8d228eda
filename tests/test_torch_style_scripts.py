"""PyTorch scripts run with `import smolgrad as torch`: a nanoGPT-style model (weight tying,
register_buffer, masked_fill with -inf, split/view/transpose, AdamW, clip_grad_norm_,
top-k sampling with in-place masking and multinomial) and the PyTorch MNIST example's CNN
(BatchNorm, Dropout, Adadelta, StepLR, nll_loss, eq/view_as accuracy, save/load)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as torch
import smolgrad.nn as nn
from smolgrad.nn import functional as F
from smolgrad.utils.data import DataLoader, TensorDataset

B, T, C, H, V = 2, 8, 16, 2, 20


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C), nn.Dropout(0.1))
        self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.attn(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        assert (y - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item() < 1e-5
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(2)])
        self.ln_f, self.lm_head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, nn.Linear):
            torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    @torch.no_grad()
    def generate(self, idx, n, temperature=1.0, top_k=None):
        for _ in range(n):
            logits, _ = self(idx if idx.size(1) <= T else idx[:, -T:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
        return idx


def test_nanogpt_style_script_trains_and_samples(device):
    torch.manual_seed(0)
    model = GPT().to(device)
    assert model.wte.weight is model.lm_head.weight
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    x, y = torch.randint(0, V, (B, T), device=device), torch.randint(0, V, (B, T), device=device)
    losses = []
    for _ in range(8):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    model.eval()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long, device=device), 3, top_k=5)
    assert out.shape == (1, 4) and 0 <= int(out.min()) and int(out.max()) < V


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, 1), nn.BatchNorm2d(8)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1, self.fc2 = nn.Linear(8 * 13 * 13, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = self.dropout1(F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2))
        return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


def test_pytorch_mnist_example_style_script(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 64)
    images = rng.random((64, 1, 28, 28)).astype(np.float32) * 0.1
    images[np.arange(64), 0, labels * 2 + 3, 5:20] = 1.0  # a learnable stripe per class
    loader = DataLoader(TensorDataset(torch.tensor(images), torch.tensor(labels)), batch_size=16, shuffle=True)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    for _ in range(3):
        model.train()
        for data, target in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
        scheduler.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in loader:
            pred = model(data).argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    assert correct / len(loader.dataset) > 0.5
    torch.save(model.state_dict(), tmp_path / "mnist_cnn.pt")
    state = torch.load(tmp_path / "mnist_cnn.pt")
    assert "bn1.running_var" in state and "bn1.num_batches_tracked" in state
    twin = Net()
    twin.load_state_dict(state)
    twin.eval()
    with torch.no_grad():
        assert np.allclose(twin(data).numpy(), model(data).numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["topk", "multinomial", "einsum", "scatter_reduce", "linspace", "Generator"])
def test_torch_names_exist(name):
    assert hasattr(torch, name)
