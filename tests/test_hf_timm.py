"""kdlab.distill on a Hugging Face transformers model and a timm model, built from small configs with no
weights downloaded: the ViT returns an ImageClassifierOutput, timm's ResNet a tensor."""

import pytest
import torch

import kdlab
from kdlab import data

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")


def vit():
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=10,
    )
    return transformers.ViTForImageClassification(config)


def resnet():
    return timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", train_size=300, test_size=100)


def test_a_timm_teacher_distils_into_a_transformers_student(digits):
    torch.manual_seed(0)
    teacher, student = resnet(), vit()
    trained, history = kdlab.distill(teacher, student, digits.train, digits.test, epochs=1, device="cpu",
                                     progress=False)
    assert 0 <= history.last("test_error") <= len(digits.test)
    out = trained(digits.test.x[:2])
    assert type(out).__name__ == "ImageClassifierOutput" and out.logits.shape == (2, 10)


def test_fitnets_hints_from_a_transformers_layer_into_a_timm_layer(digits):
    torch.manual_seed(0)
    teacher = vit()
    _, history = kdlab.distill(teacher, resnet, digits.train, digits.test, method="fitnets",
                               hint="vit.layers.0", guided="layer1", regressor="fc", epochs=1, device="cpu",
                               progress=False)
    assert "test_error" in history.keys()
    assert type(teacher(digits.test.x[:2])).__name__ == "ImageClassifierOutput"  # the teacher as it was given
    with pytest.raises(KeyError, match="close matches: \\['vit.layers.0'"):
        kdlab.distill(teacher, resnet, digits.train, method="fitnets", hint="vit.encoder.layer.0",
                      guided="layer1", epochs=1, device="cpu")


def bert(layers: int, hidden: int):
    config = transformers.BertConfig(
        vocab_size=20, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=16, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def test_dict_batches_as_hugging_face_gives_them_images_and_text(digits):
    from torch.utils.data import DataLoader

    images = [{"pixel_values": x, "labels": y} for x, y in zip(*digits.train.tensors, strict=True)]
    torch.manual_seed(0)
    _, history = kdlab.distill(resnet(), vit(), DataLoader(images, batch_size=50), digits.test, epochs=1,
                               device="cpu", progress=False)
    assert 0 <= history.last("test_error") <= len(digits.test)
    # Text: token ids, an attention mask of ones (no padding), a label: does token 7 occur?
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 20, (200, 12), generator=generator)
    labels = (tokens == 7).any(dim=1).long()
    texts = [{"input_ids": t, "attention_mask": torch.ones(12, dtype=torch.long), "labels": y}
             for t, y in zip(tokens, labels, strict=True)]
    teacher, _ = kdlab.methods.train_model(lambda: kdlab.adapters.select_logits(bert(2, 16)),
                                           (tokens, labels), epochs=2, lr=1e-3, device="cpu", progress=False)
    student, history = kdlab.distill(teacher, bert(1, 8), DataLoader(texts, batch_size=20),
                                     DataLoader(texts[:60], batch_size=20), epochs=1, device="cpu",
                                     progress=False)
    assert 0 <= history.last("test_error") <= 60
    assert type(student(tokens[:2])).__name__ == "SequenceClassifierOutput"
