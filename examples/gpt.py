"""A tiny GPT in smolgrad.nn, its configs, a byte-level BPE tokenizer, token batches and
sampling with a KV cache: shared by train_gpt.py, sample_gpt.py and benchmarks/gpt_torch.py.

The model: token and position embeddings, pre-LayerNorm blocks of causal multi-head
self-attention and a GELU MLP, a final LayerNorm, and an output head tied to the token
embedding (GPT-2's layout, as in nanoGPT)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

import smolgrad as sg
from smolgrad import nn
from smolgrad.nn import functional as F

EOT = "<|endoftext|>"


# ----- configs -----

@dataclass
class GPTConfig:
    vocab_size: int = 512
    context: int = 128       # the longest sequence the model reads (position embeddings)
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    # ~0.8M parameters: learns visibly in about ten minutes on a 2-core CPU (numpy device)
    "default": GPTConfig(vocab_size=512, context=128, dim=128, n_layers=4, n_heads=4),
    # llama2.c's stories260K shape, for a real GPU
    "260k": GPTConfig(vocab_size=512, context=512, dim=64, n_layers=5, n_heads=8),
    # for tests: seconds per step even on lavapipe
    "tiny": GPTConfig(vocab_size=512, context=32, dim=32, n_layers=2, n_heads=2),
}


# ----- model -----

class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.dim % config.n_heads:
            raise ValueError(f"dim {config.dim} is not a multiple of n_heads {config.n_heads}")
        self.n_heads, self.head_dim = config.n_heads, config.dim // config.n_heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.proj = nn.Linear(config.dim, config.dim)

    def forward(self, x: sg.Tensor, cache: KVCache | None = None, pos: sg.Tensor | None = None) -> sg.Tensor:
        """x: (B, T, dim) at positions 0 .. T-1. With `cache`, its keys and values are
        written into it; with `pos` too (a (1,) int64 tensor), x is the one position `pos`
        and attends to the cache's positions up to it."""
        B, T, C = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                    # each (B, heads, T, head_dim)
        if cache is not None and pos is not None:          # one new position: same shapes at every step
            places = sg.arange(cache.k.shape[2], device=x.device)
            here = (places == pos).reshape(1, 1, -1, 1)     # computed on the device: no host read of pos
            cache.k.copy_(sg.where(here, k, cache.k))
            cache.v.copy_(sg.where(here, v, cache.v))
            # the whole cache, its positions after pos masked out
            y = F.scaled_dot_product_attention(q, cache.k, cache.v, attn_mask=places <= pos)
        else:
            if cache is not None:                           # the prompt fills the cache's first T positions
                cache.k[:, :, :T] = k
                cache.v[:, :, :T] = v
            # one fused attention kernel on webgpu: the (T, T) scores are never stored
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, head_dim)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class KVCache:
    """The keys and values one block has computed, for incremental decoding: fixed-size
    buffers (batch, heads, context, head_dim) written in place one position per token, so
    every decoding step has the same shapes and a captured step (smolgrad.compile)
    replays it."""

    def __init__(self, config: GPTConfig, batch: int = 1, device=None):
        shape = (batch, config.n_heads, config.context, config.dim // config.n_heads)
        self.k = sg.tensor(np.zeros(shape, np.float32), device=device)
        self.v = sg.tensor(np.zeros(shape, np.float32), device=device)


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.dim
        self.ln1 = nn.LayerNorm(config.dim)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.dim)
        self.fc = nn.Linear(config.dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc_proj = nn.Linear(hidden, config.dim)

    def forward(self, x: sg.Tensor, cache: KVCache | None = None, pos: sg.Tensor | None = None) -> sg.Tensor:
        x = x + self.attn(self.ln1(x), cache, pos)
        return x + self.fc_proj(self.act(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """GPT(config)(idx) -> logits (B, T, vocab_size) for token ids idx (B, T)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.dim)
        self.pos_emb = nn.Embedding(config.context, config.dim)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.dim)
        # GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                std = 0.02 / math.sqrt(2 * config.n_layers) if name.endswith(("proj.weight", "fc_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: sg.Tensor, caches: list[KVCache] | None = None, pos: sg.Tensor | None = None) -> sg.Tensor:
        """idx: (B, T) int64 token ids at positions 0 .. T-1 -> logits (B, T, vocab_size).
        `caches` (one KVCache per block) are filled with those positions' keys and values;
        with `pos` (a (1,) int64 tensor) idx is (B, 1), the token at position `pos`, which
        attends to the cached positions before it (see `generate`)."""
        B, T = idx.shape
        if T > self.config.context:
            raise ValueError(f"{T} positions exceed the model's context of {self.config.context}")
        positions = pos if pos is not None else sg.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], pos)
        x = self.ln_f(x)
        return x @ self.tok_emb.weight.T       # the head shares the token embedding's weights

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices (linear weights, embeddings), none on
    biases and LayerNorm parameters."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup: int, total: int, min_ratio: float = 0.1):
    """The learning-rate factor at step s: linear warmup over `warmup` steps, then cosine
    decay to `min_ratio` at step `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


# ----- tokenizer -----

def train_tokenizer(stories: list[str], vocab_size: int):
    """A byte-level BPE (GPT-2 style) trained on `stories` with the `tokenizers` library,
    with <|endoftext|> as its one special token (id 0)."""
    tokenizers = import_tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(stories, trainer=trainer)
    return tok


def load_tokenizer(path: str | Path):
    tokenizers = import_tokenizers()
    return tokenizers.Tokenizer.from_file(str(path))


def import_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise SystemExit("the GPT examples need the `tokenizers` package: pip install tokenizers "
                         "(or pip install -e \".[gpt]\")") from None
    return tokenizers


def encode_stories(tok, stories: list[str]) -> np.ndarray:
    """All stories as one int32 array of token ids, each story followed by <|endoftext|>."""
    eot = tok.token_to_id(EOT)
    ids = []
    for enc in tok.encode_batch(stories):
        ids.extend(enc.ids)
        ids.append(eot)
    return np.asarray(ids, dtype=np.int32)


def split_train_val(stories: list[str], val_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """The last `val_fraction` of the stories (at least one) held out for validation."""
    if len(stories) < 2:
        raise ValueError(f"need at least two stories to hold one out for validation, got {len(stories)}")
    n_val = max(1, round(len(stories) * val_fraction))
    return stories[:-n_val], stories[-n_val:]


# ----- batches -----

def random_batch(data: np.ndarray, batch_size: int, context: int, rng: np.random.Generator):
    """(x, y) int64 arrays (batch_size, context): random windows of `data` and the same
    windows shifted by one token."""
    if len(data) < context + 1:
        raise ValueError(f"{len(data)} tokens are too few for a context of {context}")
    starts = rng.integers(0, len(data) - context, size=batch_size)
    x = np.stack([data[s:s + context] for s in starts]).astype(np.int64)
    y = np.stack([data[s + 1:s + context + 1] for s in starts]).astype(np.int64)
    return x, y


def eval_batches(data: np.ndarray, batch_size: int, context: int, max_batches: int):
    """Up to `max_batches` fixed batches of consecutive windows of `data` (the same every
    call, so validation losses are comparable). Data shorter than context + 1 gives one
    shorter window."""
    context = min(context, len(data) - 1)
    n_windows = min((len(data) - 1) // context, batch_size * max_batches)
    out = []
    for b in range(0, n_windows, batch_size):
        starts = [i * context for i in range(b, min(b + batch_size, n_windows))]
        x = np.stack([data[s:s + context] for s in starts]).astype(np.int64)
        y = np.stack([data[s + 1:s + context + 1] for s in starts]).astype(np.int64)
        out.append((x, y))
    return out


def evaluate(model: GPT, batches, device) -> float:
    """Mean cross-entropy (nats per token) of `model` over `batches`."""
    model.eval()
    total, count = 0.0, 0
    with sg.no_grad():
        for x, y in batches:
            logits = model(sg.tensor(x, device=device))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), sg.tensor(y, device=device).reshape(-1),
                                   reduction="sum")
            total += loss.item()
            count += y.size
    model.train()
    return total / count


def attention_probs(model: GPT, idx: sg.Tensor, layer: int) -> sg.Tensor:
    """The attention weights (B, heads, T, T) of block `layer` for token ids idx (B, T), as
    its forward computes them (for the live view's attention map)."""
    B, T = idx.shape
    x = model.tok_emb(idx) + model.pos_emb(sg.arange(T, device=idx.device))
    for block in model.blocks[:layer]:
        x = block(x)
    block = model.blocks[layer]
    attn = block.attn
    qkv = attn.qkv(block.ln1(x)).reshape(B, T, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    scores = (qkv[0] @ qkv[1].transpose(-2, -1)) * (1.0 / math.sqrt(attn.head_dim))
    future = sg.ones(T, T, dtype=sg.bool, device=idx.device).triu(diagonal=1)
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


# ----- sampling -----

def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """A token id drawn from one row of logits: greedy when temperature is 0, else from
    softmax(logits / temperature) restricted to the top_k most likely tokens."""
    logits = logits.astype(np.float64)
    if temperature <= 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is not None and 0 < top_k < len(logits):
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    p = np.exp(logits - logits.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def generate(model: GPT, prompt_ids: list[int], max_new_tokens: int, temperature: float = 0.8,
             top_k: int | None = 40, seed: int = 0, stop_id: int | None = None, device=None, compiled: bool = True):
    """Yield new token ids one at a time. The prompt runs through the model once, filling
    a fixed-size KV cache per block; each new token then costs one position, a step of
    the same shapes every time, captured with smolgrad.compile (unless `compiled` is
    False) so that it replays with no Python per op and compiles nothing. When the
    context fills up, the cache restarts from the last half of the context."""
    rng = np.random.default_rng(seed)
    context = model.config.context
    ids = list(prompt_ids) or ([stop_id] if stop_id is not None else [0])
    model.eval()
    caches: list[KVCache] = []

    def next_logits(token: sg.Tensor, pos: sg.Tensor) -> sg.Tensor:
        with sg.no_grad():
            return model(token, caches, pos)[:, -1]

    step = sg.compile(next_logits) if compiled else next_logits
    window: list[int] = []
    for _ in range(max_new_tokens):
        if not caches or len(window) >= context:
            window = ids[-(context // 2):] if len(ids) >= context else ids[-context:]
            if not caches:  # (made once: the same buffers every time, so the captured step stays valid)
                caches[:] = [KVCache(model.config, 1, device) for _ in model.blocks]
            with sg.no_grad():
                row = model(sg.tensor([window], dtype=sg.int64, device=device), caches)[0, -1].numpy()
        else:
            token = sg.tensor([[ids[-1]]], dtype=sg.int64, device=device)
            row = step(token, sg.tensor([len(window) - 1], dtype=sg.int64, device=device))[0].numpy()
        nxt = sample_next(row, temperature, top_k, rng)
        if stop_id is not None and nxt == stop_id:
            return
        ids.append(nxt)
        window.append(nxt)
        yield nxt


def stream_text(tok, token_ids, write) -> str:
    """Decode `token_ids` (an iterator) as they come and pass each new piece of text to
    `write`; a byte-level token can end inside a UTF-8 character, so text is written only
    once it decodes cleanly. Returns the whole text."""
    ids, shown = [], ""
    for t in token_ids:
        ids.append(t)
        text = tok.decode(ids)
        if not text.endswith("\ufffd"):
            write(text[len(shown):])
            shown = text
    text = tok.decode(ids)
    if text != shown:
        write(text[len(shown):])
    return text
