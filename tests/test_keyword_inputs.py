"""Padded text batches: the attention mask (and token types) of a dict batch reach a Hugging Face model as
keywords, through kdlab's one input tensor, so padding changes nothing a model computes."""

import pytest
import torch
from torch.utils.data import DataLoader

import kdlab
from kdlab import inputs, models

transformers = pytest.importorskip("transformers")

FIT = dict(epochs=1, lr=1e-3, batch_size=8, device="cpu", progress=False)


def bert(layers: int, hidden: int):
    config = transformers.BertConfig(
        vocab_size=20, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=16, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def texts(n: int = 48, seed: int = 0) -> list[dict]:
    """Token sequences of 3 to 12 tokens (ids 1..19); the label says whether token 7 occurs."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (n,), generator=generator)
    found = []
    for length in lengths.tolist():
        ids = torch.randint(1, 20, (length,), generator=generator)
        found.append({"input_ids": ids, "labels": int((ids == 7).any())})
    return found


def pad(pad_id: int, to: int | None = None):
    """A collator padding each batch to its longest sequence (or to ``to``) with ``pad_id``, with the mask."""

    def collate(items: list[dict]) -> dict:
        length = to or max(len(item["input_ids"]) for item in items)
        ids = torch.full((len(items), length), pad_id)
        mask = torch.zeros(len(items), length, dtype=torch.long)
        for i, item in enumerate(items):
            ids[i, : len(item["input_ids"])] = item["input_ids"]
            mask[i, : len(item["input_ids"])] = 1
        labels = torch.tensor([item["labels"] for item in items])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def test_the_stacked_input_runs_the_model_as_its_keywords_would_and_is_undone():
    torch.manual_seed(0)
    model = bert(1, 8).eval()
    batch = pad(0)(texts(6))
    x, y = inputs.read(batch, "train batch 0")
    assert x.shape == (6, 2, batch["input_ids"].shape[1]) and torch.equal(y, batch["labels"])
    expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    inputs.keyword_inputs(model, ("input_ids", "attention_mask"))
    assert torch.equal(model(x).logits, expected)
    unmasked = model(input_ids=batch["input_ids"]).logits  # a keyword call of the user's: left alone
    assert not torch.equal(unmasked, expected)  # (the mask matters for these padded texts)
    inputs.restore_inputs(model)
    assert not model._forward_pre_hooks
    assert torch.equal(model(input_ids=batch["input_ids"]).logits, unmasked)


def teacher():
    torch.manual_seed(1)
    trained, _ = kdlab.distill(bert(1, 16), lambda: bert(1, 16), DataLoader(texts(), batch_size=8,
                               collate_fn=pad(0)), **{**FIT, "epochs": 2, "alpha": 0.0})
    return trained


def test_distilling_on_padded_batches_does_not_depend_on_the_pad_token():
    """Each batch is padded to its own longest text with a pad id of 0 or of 5: with the mask passed on,
    the pads are never attended, so the two students are the same."""
    big, test = teacher(), pad(0, to=12)(texts(16, seed=1))
    students = []
    for pad_id in (0, 5):
        loader = DataLoader(texts(), batch_size=8, collate_fn=pad(pad_id))
        torch.manual_seed(2)
        student, history = kdlab.distill(big, lambda: bert(1, 8), loader, test, **FIT)
        assert 0 <= history.last("test_error") <= 16
        students.append(student)
    for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    out = students[0](input_ids=test["input_ids"], attention_mask=test["attention_mask"])
    assert type(out).__name__ == "SequenceClassifierOutput"  # the student's own call, hooks removed


def test_a_dict_of_tensors_is_a_training_set_in_memory():
    data = pad(0, to=12)(texts())
    torch.manual_seed(2)
    _, history = kdlab.distill(bert(1, 8), lambda: bert(1, 8), data, data, method="dkd", **FIT)
    assert len(history) == 1
    cohort, history = kdlab.mutual([lambda: bert(1, 8)] * 2, data, data, **FIT)
    assert len(cohort) == 2 and "test_error/ensemble" in history.keys()


def test_padded_inputs_kdlab_cannot_use_are_named():
    loader = DataLoader(texts(), batch_size=8, collate_fn=pad(0))
    with pytest.raises(TypeError, match=r"'attention_mask'\] as keywords, and the student failed"):
        kdlab.distill(bert(1, 8), lambda: models.mlp((12, 2)), loader, **FIT)
    uneven_test = DataLoader([pad(0, to=12)(texts(4)), pad(0, to=14)(texts(4))], batch_size=None)
    with pytest.raises(ValueError, match=r"test batch 1 has inputs of shape .*padding='max_length'"):
        kdlab.distill(bert(1, 8), lambda: bert(1, 8), loader, uneven_test, **FIT)
    ids_only = {"input_ids": torch.ones(4, 12, dtype=torch.long), "labels": torch.zeros(4, dtype=torch.long)}
    with pytest.raises(TypeError, match=r"test batch 0 has the inputs \['input_ids'\], but the models take"):
        kdlab.distill(bert(1, 8), lambda: bert(1, 8), loader, DataLoader([ids_only], batch_size=None), **FIT)
    short_mask = {**ids_only, "attention_mask": torch.ones(4, 11, dtype=torch.long)}
    with pytest.raises(TypeError, match=r"'attention_mask' has shape \(4, 11\), 'input_ids' \(4, 12\)"):
        kdlab.distill(bert(1, 8), lambda: bert(1, 8), short_mask, **FIT)
