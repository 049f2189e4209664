"""Text as tensors of character ids, for character-level language models: a corpus that ships with
Python, its vocabulary, a split by contiguous blocks, and windows of (input, next character).

The corpus is the standard library's ``pydoc_data.topics`` (the help texts of ``help("topics")``:
about half a million characters of English documentation with code), read at run time, so nothing
is downloaded and nothing is copied into the repository. Its text, and so every number measured on
it, belongs to the Python version that runs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import Tensor

from kdlab import _checks, dry_run
from kdlab.data import Tensors

CORPORA = ("pydoc_topics",)
PARTS = ("train", "val", "test")
# Of every PERIOD consecutive blocks, the second to last is validation and the last is test.
PERIOD = 10
# A dry run keeps the first blocks of each part: this many of train, one each of val and test.
DRY_RUN_TRAIN_BLOCKS = 4


def corpus(name: str = "pydoc_topics") -> str:
    """The text of corpus ``name``: for ``"pydoc_topics"``, the values of
    ``pydoc_data.topics.topics`` joined in the sorted order of their keys (a fixed order)."""
    _checks.choice("name", name, CORPORA)
    try:
        topics = importlib.import_module("pydoc_data.topics").topics
    except ImportError as error:  # some distributions strip the module out of Python
        raise RuntimeError(
            "corpus 'pydoc_topics' needs the standard library's pydoc_data package, which this Python lacks "
            f"({error}); install a full Python (python.org, conda or your system's python3 with its docs)"
        ) from error
    return "".join(topics[key] for key in sorted(topics))


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, in sorted order: character ``chars[i]`` has id ``i``."""

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """Every character that occurs in ``text``."""
        if not text:
            raise ValueError("text must hold at least one character to make a vocabulary, got ''")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """``text`` as ids: (len(text),) int64. A character outside the vocabulary is an error naming it."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return torch.tensor([index[c] for c in text], dtype=torch.int64)
        except KeyError as error:
            where = text.index(error.args[0])
            raise ValueError(
                f"text holds the character {error.args[0]!r} (at position {where}), which is not in the "
                f"vocabulary of {self.size} characters"
            ) from None

    def decode(self, ids: Tensor) -> str:
        """The text of a 1-D tensor of ids (ids outside [0, size) are an error)."""
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}; decode each row")
        values = ids.tolist()
        if values and (min(values) < 0 or max(values) >= self.size):
            raise ValueError(
                f"ids must lie in [0, {self.size - 1}], got values in [{min(values)}, {max(values)}]"
            )
        return "".join(self.chars[i] for i in values)


@dataclass(frozen=True)
class TextSplit:
    """A corpus cut into ``block``-character blocks, each part a (blocks, block) int64 tensor of ids."""

    name: str
    vocab: Vocabulary
    train: Tensor
    val: Tensor
    test: Tensor
    block: int

    def part(self, part: str) -> Tensor:
        """The blocks of ``part`` (``"train"``, ``"val"`` or ``"test"``): (blocks, block) int64."""
        _checks.choice("part", part, PARTS)
        return getattr(self, part)

    def windows(
        self, part: str, context: int, stride: int | None = None, blocks: int | None = None
    ) -> Tensors:
        """Windows of ``context + 1`` characters of ``part``, as ``Tensors(x, y)``: ``x`` the first
        ``context`` characters, ``y`` the same shifted by one (the next character at every position).

        Windows start every ``stride`` characters (default ``context``: no overlap) within each block,
        never across two blocks (their texts are not adjacent); ``blocks`` keeps the first blocks of
        the part only (``None``: all). Shapes: x and y (windows, context) int64.
        """
        found = self.part(part)
        _checks.at_least("context", context, 1)
        if context + 1 > self.block:
            raise ValueError(
                f"context must be <= {self.block - 1} (a window lies within a block), got {context}"
            )
        stride = context if stride is None else _checks.at_least("stride", stride, 1)
        available = dry_run.exact(found) or len(found)  # a dry run's miniature stands for all blocks
        if blocks is not None:
            _checks.at_least("blocks", blocks, 1)
            if blocks > available:
                raise ValueError(f"blocks must be <= {available} (the {part} part's blocks), got {blocks}")
        real_blocks = blocks or available
        kept = found[: min(real_blocks, len(found))]
        cut = kept.unfold(1, context + 1, stride).reshape(-1, context + 1)
        x, y = cut[:, :-1].contiguous(), cut[:, 1:].contiguous()
        if dry_run.active():
            dry_run.remember(x, real_blocks * (len(cut) // len(kept)), latest=part == "train")
        return Tensors(x, y)

    def text(self, part: str) -> str:
        """The text of ``part``, its blocks joined."""
        return self.vocab.decode(self.part(part).reshape(-1))


def load(name: str = "pydoc_topics", block: int = 1024) -> TextSplit:
    """Corpus ``name`` as ids, split by contiguous blocks of ``block`` characters: of every 10
    consecutive blocks the 9th is validation, the 10th test, the rest train (80/10/10, every part
    spread over the whole text; no seed: the split is fixed). The last ``len % block`` characters
    are dropped. The vocabulary is every character of the whole corpus.

    In a dry run (:mod:`kdlab.dry_run`) each part keeps its first blocks only
    (:data:`DRY_RUN_TRAIN_BLOCKS` of train, one of val and of test), remembered as standing for all.
    """
    _checks.at_least("block", block, 2)
    text = corpus(name)
    vocab = Vocabulary.of(text)
    count = len(text) // block
    if count < PERIOD:
        raise ValueError(
            f"block must leave at least {PERIOD} blocks of the {len(text):,} characters of {name!r}, "
            f"got {block}"
        )
    blocks = vocab.encode(text[: count * block]).view(count, block)
    which = torch.arange(count) % PERIOD
    parts = {"train": blocks[which < PERIOD - 2], "val": blocks[which == PERIOD - 2],
             "test": blocks[which == PERIOD - 1]}
    if dry_run.active():
        for part, keep in (("train", DRY_RUN_TRAIN_BLOCKS), ("val", 1), ("test", 1)):
            real = len(parts[part])
            parts[part] = parts[part][:keep].clone()
            dry_run.remember(parts[part], real, latest=False)
    return TextSplit(name, vocab, parts["train"], parts["val"], parts["test"], block)
