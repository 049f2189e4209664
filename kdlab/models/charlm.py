"""A small causal character-level transformer, and sampling from it.

A GPT-style decoder (Radford et al. 2019's layout at toy scale): token and learned position
embeddings, ``depth`` pre-norm blocks (causal self-attention through
:func:`torch.nn.functional.scaled_dot_product_attention`, then a GELU MLP), a final layer norm
and a linear head over the vocabulary, by default tied to the token embedding (Press & Wolf
2017). Feature points (for :func:`kdlab.features.capture`): ``blocks.0`` .. ``blocks.{depth-1}``
(the residual stream after each block) and ``norm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks

# The keys and values of every block for the positions seen so far: [(k, v)] with k, v of shape
# (batch, heads, positions, width // heads).
Past = list[tuple[Tensor, Tensor]]


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch, length, width = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # With a past, the one new position may see every earlier one: no mask. Without, is_causal
        # masks the future (its top-left-aligned mask is the causal one when queries == keys).
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=past is None, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(batch, length, width)), (k, v)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = _Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        attended, kv = self.attention(self.norm1(h), past)
        h = h + self.drop(attended)
        return h + self.drop(self.mlp(self.norm2(h))), kv


class CharTransformer(nn.Module):
    """A causal transformer over ``vocab_size`` characters, seeing at most ``context`` of them.

    ``width`` (the residual stream, divisible by ``heads``), ``depth`` blocks, ``heads`` attention
    heads, ``dropout`` (on attention weights and residual branches; 0 by default), ``tied``: the
    output head shares the token embedding's weights. Position ``i``'s logits depend on positions
    ``0..i`` only.

    Shapes: ``forward(x)``: (batch, length) int64, length <= context -> (batch, length, vocab_size).
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        tied: bool = True,
    ) -> None:
        super().__init__()
        _checks.at_least("vocab_size", vocab_size, 2)
        _checks.at_least("context", context, 1)
        _checks.at_least("width", width, 1)
        _checks.at_least("depth", depth, 1)
        _checks.at_least("heads", heads, 1)
        if width % heads:
            raise ValueError(f"width must be divisible by heads ({heads}), got width={width}")
        _checks.in_range("dropout", dropout, 0.0, 1.0)
        self.vocab_size, self.context, self.tied = vocab_size, context, tied
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        for module in self.modules():  # GPT-2's initialisation: N(0, 0.02) weights, zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if tied:
            self.head.weight = self.token.weight

    def forward(self, x: Tensor) -> Tensor:
        """Next-character logits at every position. Shapes: (batch, length) -> (batch, length, vocab)."""
        return self.decode(x)[0]

    def decode(self, x: Tensor, past: Past | None = None) -> tuple[Tensor, Past]:
        """Logits for ``x`` and the keys and values of every position seen, for sampling.

        Without ``past``, ``x`` (batch, length) starts at position 0. With ``past`` (what a previous
        call returned for the ``p`` positions before), ``x`` is the one next character, (batch, 1),
        at position ``p``. Shapes: -> (batch, length, vocab), the new past.
        """
        if x.dim() != 2 or x.dtype != torch.int64:
            raise ValueError(
                f"x must be (batch, length) int64 token ids, got shape {tuple(x.shape)} {x.dtype}"
            )
        start = 0 if past is None else past[0][0].shape[2]
        if past is not None and x.shape[1] != 1:
            raise ValueError(f"with a past, x must hold one new position per row, got length {x.shape[1]}")
        if start + x.shape[1] > self.context:
            raise ValueError(
                f"the model sees at most context={self.context} positions, got {start + x.shape[1]}"
            )
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        h = self.token(x) + self.position(positions)
        kept: Past = []
        for k, block in enumerate(self.blocks):
            h, kv = block(h, None if past is None else past[k])
            kept.append(kv)
        return self.head(self.norm(h)), kept


@torch.no_grad()
def generate(
    model: CharTransformer,
    prompt: Tensor,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``prompt`` followed by ``length`` characters sampled from ``model`` at ``temperature``.

    Each character is drawn from softmax(logits / temperature) of the last position, with
    ``generator`` (its device must be the model's; ``None``: torch's global generator), so a seeded
    generator gives the same text every time. Within the model's context the keys and values of
    earlier positions are kept; past it, the last ``context`` characters are re-read every step (a
    sliding window: learned positions cannot be shifted). The model is sampled in eval mode and
    left in the mode it had. Shapes: (batch, prompt_length) int64, prompt_length >= 1 ->
    (batch, prompt_length + length).
    """
    if prompt.dim() != 2 or prompt.dtype != torch.int64 or prompt.shape[1] < 1:
        raise ValueError(
            f"prompt must be (batch, length >= 1) int64 token ids, got shape {tuple(prompt.shape)} "
            f"{prompt.dtype}"
        )
    _checks.at_least("length", length, 0)
    _checks.positive("temperature", temperature)
    training = model.training
    model.eval()
    try:
        ids, past = prompt, None
        for _ in range(length):
            if ids.shape[1] > model.context:  # past the context: the sliding window, no kept keys
                logits, past = model.decode(ids[:, -model.context :])[0], None
            elif past is None:
                logits, past = model.decode(ids)
            else:
                logits, past = model.decode(ids[:, -1:], past)
            probabilities = F.softmax(logits[:, -1].float() / temperature, dim=-1)
            following = torch.multinomial(probabilities, 1, generator=generator)
            ids = torch.cat([ids, following], dim=1)
        return ids
    finally:
        model.train(training)
