"""A tiny byte-level GPT: the model of the ``gpt`` testbed, in one file.

In the spirit of nanoGPT's ``model.py`` (Karpathy): token and position embeddings, pre-LayerNorm
blocks of causal self-attention (``F.scaled_dot_product_attention``) and a GELU MLP, a final
LayerNorm and an output head tied to the token embedding. No dropout: the runs are short and
every difference between two methods should be theirs, not a mask's. Every projection is an
``nn.Linear`` whose name reads (``blocks.0.attn.qkv``, ``blocks.0.attn.proj``, ``blocks.0.mlp.fc``,
``blocks.0.mlp.proj``), so adapters attach to it by name like any other model's; the head is the
embedding matrix itself (``F.linear(x, wte.weight)``), not a Linear an adapter could wrap.

Initialisation is nanoGPT's (GPT-2's): every weight N(0, 0.02²), the residual projections'
N(0, (0.02 / sqrt(2 n_layer))²), biases zero, LayerNorms at (1, 0), all drawn from one generator.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The Linear layers adapters wrap, by --targets: a regex matched in full against module names.
TARGET_PATTERNS = {
    "attn": r"blocks\.\d+\.attn\.(qkv|proj)",
    "mlp": r"blocks\.\d+\.mlp\.(fc|proj)",
    "all": r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc|proj))",
}


@dataclass(frozen=True)
class GPTConfig:
    """The model's sizes; bytes in, bytes out."""

    vocab_size: int = 256
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    context: int = 64

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{f.name} must be an integer >= 1, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"n_head must divide d_model, got d_model={self.d_model}, n_head={self.n_head}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # queries, keys and values of every head at once
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x (B, T, C)
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if generator is not None:
            self.init_weights(generator)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2's: N(0, 0.02²), residual projections scaled by 1 / sqrt(2 n_layer), biases zero."""
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = 0.02 / math.sqrt(2 * self.cfg.n_layer) if name.endswith(".proj") else 0.02
                module.weight.normal_(0.0, std, generator=generator)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next byte at every position: (B, T) int64 -> (B, T, vocab)."""
        T = idx.shape[-1]
        if T > self.cfg.context:
            raise ValueError(f"a sequence of {T} bytes exceeds the context of {self.cfg.context}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return F.linear(self.ln_f(x), self.wte.weight)  # (B, T, vocab): the head tied to the embedding


def make_gpt(cfg: GPTConfig, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> GPT:
    """A freshly initialised GPT, its weights drawn from ``generator`` alone."""
    return GPT(cfg, generator).to(dtype)


def target_pattern(targets: str) -> re.Pattern[str]:
    """The regex of the Linear layers ``--targets attn|mlp|all`` selects."""
    if targets not in TARGET_PATTERNS:
        raise ValueError(f"unknown targets {targets!r}; choose one of: {', '.join(TARGET_PATTERNS)}")
    return re.compile(TARGET_PATTERNS[targets])


def bits_per_byte(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next byte, in bits (nats / ln 2)."""
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten()) / math.log(2)
