"""The language-model chapter's code: per-token divergences against naive loops and identities, the
character transformer and its sampling, the text split, the measures and the recipes end to end."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from kdlab import cache, dry_run, text
from kdlab.data import Tensors
from kdlab.losses import sequence
from kdlab.methods import language
from kdlab.models.charlm import CharTransformer, generate

# --- losses: against naive loops ------------------------------------------------------------------


def softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def kl(a: list[float], b: list[float]) -> float:
    return sum(ai * math.log(ai / bi) for ai, bi in zip(a, b, strict=True) if ai > 0)


def naive(student, teacher, per_token, t=1.0, mask=None):
    """The mean over kept tokens of per_token(p_teacher, q_student), times t^2, by Python loops."""
    values = []
    for b in range(student.shape[0]):
        for i in range(student.shape[1]):
            if mask is None or mask[b, i]:
                p, q = softmax(teacher[b, i].tolist(), t), softmax(student[b, i].tolist(), t)
                values.append(per_token(p, q))
    return sum(values) / len(values) * t * t


def naive_jsd(beta):
    def jsd(p, q):
        m = [beta * pi + (1 - beta) * qi for pi, qi in zip(p, q, strict=True)]
        return beta * kl(p, m) + (1 - beta) * kl(q, m)

    return jsd


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    student = 2 * torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    teacher = 2 * torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    mask = torch.rand(3, 4, generator=generator) < 0.6
    mask[0, 0] = True
    return student, teacher, mask


@pytest.mark.parametrize("t", [1.0, 2.5])
def test_each_divergence_matches_a_naive_loop_over_tokens_and_vocabulary(logits, t):
    student, teacher, mask = logits
    for m in (None, mask):
        got = sequence.forward_kl(student, teacher, t, m)
        assert float(got) == pytest.approx(naive(student, teacher, kl, t, m), rel=1e-5)
        got = sequence.reverse_kl(student, teacher, t, m)
        assert float(got) == pytest.approx(naive(student, teacher, lambda p, q: kl(q, p), t, m), rel=1e-5)
        for beta in (0.1, 0.5, 0.9):
            got = sequence.generalised_jsd(student, teacher, beta, t, m)
            assert float(got) == pytest.approx(naive(student, teacher, naive_jsd(beta), t, m), rel=1e-5)


def test_forward_kl_is_cross_entropy_minus_the_teachers_entropy(logits):
    student, teacher, _ = logits
    p = torch.softmax(teacher, -1)
    cross_entropy = -(p * torch.log_softmax(student, -1)).sum(-1).mean()
    entropy = -(p * torch.log_softmax(teacher, -1)).sum(-1).mean()
    torch.testing.assert_close(sequence.forward_kl(student, teacher).double(), cross_entropy - entropy)


def test_jsd_is_symmetric_under_swapping_the_two_and_beta_for_one_minus_beta(logits):
    student, teacher, mask = logits
    for beta in (0.2, 0.5, 0.7):
        torch.testing.assert_close(sequence.generalised_jsd(student, teacher, beta, mask=mask),
                                   sequence.generalised_jsd(teacher, student, 1 - beta, mask=mask))


def test_jsd_lies_between_zero_and_the_entropy_of_beta_and_vanishes_at_the_ends(logits):
    student, teacher, _ = logits
    for beta in (0.05, 0.3, 0.5, 0.95):
        value = float(sequence.generalised_jsd(student, teacher, beta))
        assert 0 < value <= -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)
    # Disjoint supports reach the bound: log 2 at beta = 1/2.
    far = torch.tensor([[[30.0, 0.0]]]), torch.tensor([[[0.0, 30.0]]])
    assert float(sequence.generalised_jsd(*far, 0.5)) == pytest.approx(math.log(2), rel=1e-6)
    for beta in (0.0, 1.0):
        assert float(sequence.generalised_jsd(student, teacher, beta)) == pytest.approx(0.0, abs=1e-12)


def test_jsd_over_beta_tends_to_forward_kl_and_over_one_minus_beta_to_reverse_kl(logits):
    student, teacher, _ = logits
    small = 1e-8  # the next term of each expansion is O(small) relative, float64 resolves it
    forward, reverse = sequence.forward_kl(student, teacher), sequence.reverse_kl(student, teacher)
    near_zero, near_one = sequence.generalised_jsd(student, teacher, small), sequence.generalised_jsd(
        student, teacher, 1 - small)
    assert float(near_zero) / small == pytest.approx(float(forward), rel=1e-4)
    assert float(near_one) / small == pytest.approx(float(reverse), rel=1e-4)
    assert language.divergence(0.0) is sequence.forward_kl
    assert language.divergence(1.0) is sequence.reverse_kl


def test_a_student_equal_to_its_teacher_has_zero_divergence(logits):
    _, teacher, mask = logits
    for loss in (sequence.forward_kl, sequence.reverse_kl):
        assert float(loss(teacher, teacher, 2.0, mask)) == pytest.approx(0.0, abs=1e-12)
    assert float(sequence.generalised_jsd(teacher, teacher, 0.5)) == pytest.approx(0.0, abs=1e-12)


def test_masking_a_token_is_dropping_it(logits):
    student, teacher, mask = logits
    kept_student, kept_teacher = student[mask].unsqueeze(0), teacher[mask].unsqueeze(0)
    for loss in (sequence.forward_kl, sequence.reverse_kl, lambda s, t, mask=None: sequence.generalised_jsd(
            s, t, 0.3, mask=mask)):
        torch.testing.assert_close(loss(student, teacher, mask=mask), loss(kept_student, kept_teacher))


def test_the_teacher_is_a_target_and_large_logits_stay_finite(logits):
    student, teacher, _ = logits
    student, teacher = student.clone().requires_grad_(True), (teacher * 1e4).requires_grad_(True)
    loss = sequence.generalised_jsd(student * 1e4, teacher, 0.5) + sequence.reverse_kl(student * 1e4, teacher)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert teacher.grad is None


def test_bad_loss_arguments_say_what_is_valid(logits):
    student, teacher, mask = logits
    with pytest.raises(ValueError, match=r"student_logits must have shape \(batch, length, vocab\)"):
        sequence.forward_kl(student[0], teacher[0])
    with pytest.raises(ValueError, match="must have the same shape"):
        sequence.reverse_kl(student, teacher[:, :2])
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        sequence.forward_kl(student, teacher, mask=mask.float())
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, length\) = \(3, 4\)"):
        sequence.forward_kl(student, teacher, mask=mask[:, :2])
    with pytest.raises(ValueError, match="mask must keep at least one position"):
        sequence.forward_kl(student, teacher, mask=torch.zeros_like(mask))
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        sequence.reverse_kl(student, teacher, 0.0)
    with pytest.raises(ValueError, match=r"beta must be in \[0.0, 1.0\], got 1.5"):
        sequence.generalised_jsd(student, teacher, 1.5)


# --- the model and its sampling -------------------------------------------------------------------


def tiny(context=12, width=16, depth=2, heads=2, seed=0, vocab=11):
    torch.manual_seed(seed)
    return CharTransformer(vocab, context, width, depth, heads)


def test_a_later_character_never_changes_an_earlier_positions_logits():
    model = tiny().eval()
    x = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])
    assert before.shape == (2, 12, 11)


def test_decoding_one_character_at_a_time_with_the_kept_keys_equals_one_pass():
    model = tiny().eval()
    x = torch.randint(0, 11, (3, 10), generator=torch.Generator().manual_seed(2))
    logits, past = model.decode(x[:, :4])
    steps = [logits]
    for i in range(4, 10):
        logits, past = model.decode(x[:, i : i + 1], past)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), model(x), atol=1e-5, rtol=1e-5)


def test_generate_is_deterministic_with_a_seeded_generator_and_slides_past_the_context():
    model = tiny(context=8).train()
    prompt = torch.randint(0, 11, (4, 3), generator=torch.Generator().manual_seed(3))
    first = generate(model, prompt, 20, generator=torch.Generator().manual_seed(0))
    again = generate(model, prompt, 20, generator=torch.Generator().manual_seed(0))
    other = generate(model, prompt, 20, generator=torch.Generator().manual_seed(1))
    assert first.shape == (4, 23) and torch.equal(first[:, :3], prompt)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert model.training  # left in the mode it had
    cold = generate(model, prompt, 20, temperature=1e-6, generator=torch.Generator().manual_seed(5))
    # Near temperature 0 every character is the arg-max of the last position (sliding window included).
    for i in range(3, 23):
        window = cold[:, max(0, i - 8) : i]
        assert torch.equal(cold[:, i], model.eval()(window)[:, -1].argmax(-1))


def test_model_arguments_and_inputs_are_checked():
    with pytest.raises(ValueError, match="width must be divisible by heads"):
        CharTransformer(10, 8, width=10, heads=3)
    with pytest.raises(ValueError, match=r"context must be an integer >= 1, got 0"):
        CharTransformer(10, 0)
    model = tiny(context=8)
    assert model.head.weight is model.token.weight
    with pytest.raises(ValueError, match="at most context=8 positions, got 9"):
        model(torch.zeros(1, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(model, torch.zeros(1, 2, dtype=torch.int64), 3, temperature=0.0)


# --- the text -------------------------------------------------------------------------------------


def test_the_corpus_is_the_pydoc_topics_in_key_order_and_encodes_both_ways():
    from pydoc_data.topics import topics

    corpus = text.corpus()
    assert corpus.startswith(topics[sorted(topics)[0]]) and len(corpus) == sum(map(len, topics.values()))
    vocab = text.Vocabulary.of(corpus)
    sample = corpus[1000:1500]
    assert vocab.decode(vocab.encode(sample)) == sample
    with pytest.raises(ValueError, match=r"'\\x00' \(at position 2\), which is not in the vocabulary"):
        vocab.encode("ab\x00")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, "):
        vocab.decode(torch.tensor([vocab.size]))
    with pytest.raises(ValueError, match="name must be one of"):
        text.corpus("shakespeare")


def test_the_split_is_disjoint_contiguous_blocks_that_tile_the_text():
    split = text.load(block=2048)
    corpus = text.corpus()
    count = len(corpus) // 2048
    assert len(split.train) + len(split.val) + len(split.test) == count
    assert len(split.val) == len(split.test) == count // 10
    starts = {"train": [], "val": [], "test": []}
    for k in range(count):
        starts[["train", "val", "test"][max(0, k % 10 - 7)]].append(k * 2048)
    for part, offsets in starts.items():
        decoded = [split.vocab.decode(row) for row in split.part(part)]
        assert decoded == [corpus[o : o + 2048] for o in offsets]
    assert not set(starts["train"]) & set(starts["val"]) and not set(starts["val"]) & set(starts["test"])


def test_windows_are_shifted_pairs_within_one_block():
    split = text.load()
    windows = split.windows("val", 100, stride=50, blocks=2)
    per_block = (1024 - 101) // 50 + 1
    assert windows.x.shape == (2 * per_block, 100)
    torch.testing.assert_close(windows.x[:, 1:], windows.y[:, :-1])
    first_of_second = split.val[1, :101]
    assert torch.equal(windows.x[per_block], first_of_second[:100])
    assert torch.equal(windows.y[per_block], first_of_second[1:])
    with pytest.raises(ValueError, match="part must be one of"):
        split.windows("dev", 10)
    with pytest.raises(ValueError, match=r"context must be <= 1023 \(a window lies within a block\)"):
        split.windows("train", 1024)
    with pytest.raises(ValueError, match="blocks must be <= 45"):
        split.windows("test", 10, blocks=46)
    with pytest.raises(ValueError, match="block must leave at least 10 blocks"):
        text.load(block=10**6)


def test_a_dry_run_keeps_a_miniature_that_stands_for_the_whole_part(monkeypatch):
    monkeypatch.setenv(dry_run.ENV, "1")
    dry_run.reset()
    split = text.load()
    assert len(split.train) == text.DRY_RUN_TRAIN_BLOCKS and len(split.val) == len(split.test) == 1
    windows = split.windows("train", 63, stride=32)
    assert dry_run.real_examples(windows.x) == 364 * len(windows) // text.DRY_RUN_TRAIN_BLOCKS
    dry_run.reset()


# --- measures ---------------------------------------------------------------------------------------


def test_distinct_ngrams_by_hand():
    samples = torch.tensor([[1, 2, 1, 2, 1], [3, 3, 3, 3, 9]])
    grams = [tuple(row[i : i + 2]) for row in samples.tolist() for i in range(4)]
    assert language.distinct_ngrams(samples, 2) == len(set(grams)) / len(grams) == 4 / 8
    assert language.distinct_ngrams(samples, 3, start=2) == 2 / 2
    with pytest.raises(ValueError, match="at least n=4 characters after start=2"):
        language.distinct_ngrams(samples, 4, start=2)


def test_bits_per_character_and_the_teachers_score_of_samples_by_hand():
    model = tiny(context=8).eval()
    x = torch.randint(0, 11, (5, 9), generator=torch.Generator().manual_seed(4))
    windows = Tensors(x[:, :-1], x[:, 1:])
    with torch.no_grad():
        log_q = torch.log_softmax(model(x[:, :-1]), -1)
    nats = [-log_q[r, i, x[r, i + 1]] for r in range(5) for i in range(8)]
    assert language.bits_per_character(model, windows, batch_size=2) == pytest.approx(
        float(sum(nats)) / 40 / math.log(2), rel=1e-5)
    scored = [-log_q[r, i, x[r, i + 1]] for r in range(5) for i in range(2, 8)]
    assert language.teacher_bits_per_character(model, x, prompt_length=3) == pytest.approx(
        float(sum(scored)) / 30 / math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="at most the teacher's context"):
        language.teacher_bits_per_character(model, torch.zeros(1, 10, dtype=torch.int64), 3)


def test_the_on_policy_schedule_holds_its_fraction_in_every_run_of_batches():
    for fraction, every in ((0.5, 2), (0.25, 4), (0.3, 10)):
        flags = [language.is_on_policy(b, fraction) for b in range(40)]
        assert sum(flags[:every]) == round(fraction * every) and sum(flags) == round(40 * fraction)
    assert not any(language.is_on_policy(b, 0.0) for b in range(9))
    assert all(language.is_on_policy(b, 1.0) for b in range(9))


def test_forward_kl_matches_moments_and_reverse_kl_seeks_the_heavier_mode():
    means, sds, weights = [-3.0, 3.0], [0.5, 0.8], [0.7, 0.3]
    mean, sd = language.fit_gaussian(means, sds, weights, "forward")
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    p = language.mixture_log_density(grid, means, sds, weights).exp()
    assert float(torch.trapezoid(p, grid)) == pytest.approx(1.0, abs=1e-6)
    assert mean == pytest.approx(float(torch.trapezoid(p * grid, grid)), abs=1e-6)
    assert sd == pytest.approx(math.sqrt(float(torch.trapezoid(p * (grid - mean) ** 2, grid))), abs=1e-6)
    mean, sd = language.fit_gaussian(means, sds, weights, "reverse")
    assert mean == pytest.approx(-3.0, abs=0.05) and sd == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="sds and weights > 0"):
        language.fit_gaussian(means, [0.5, 0.0], weights)
    with pytest.raises(ValueError, match="direction must be one of"):
        language.fit_gaussian(means, sds, weights, "both")


# --- the recipes, end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm():
    split = text.load()
    train = split.windows("train", 16, blocks=2)
    test = split.windows("test", 16, blocks=1)
    vocab = split.vocab.size

    def student():
        return CharTransformer(vocab, 16, width=16, depth=1, heads=2)

    torch.manual_seed(0)
    teacher = CharTransformer(vocab, 16, width=32, depth=1, heads=2)
    return train, test, student, teacher


FIT = dict(epochs=1, batch_size=32, lr=3e-3, seed=0, progress=False)


@pytest.mark.parametrize("method", language.METHODS)
def test_every_method_trains_a_student_end_to_end(lm, method):
    train, test, student, teacher = lm
    model, history = language.distil(method, student, train, teacher, prompt_length=4, **FIT)
    assert math.isfinite(history.last("loss"))
    assert 0 < language.bits_per_character(model, test) < 10
    if method == "gkd":
        assert history.last("on_policy") == pytest.approx(0.5, abs=0.05)
    if method == "word_kd":
        assert set(history.keys()) >= {"kd", "ce"}


def test_the_sequence_kd_corpus_is_the_teachers_text_after_real_prompts(lm):
    train, _, _, teacher = lm
    corpus = language.sequence_kd_corpus(teacher, train, prompt_length=4, temperature=0.7)
    assert corpus.x.shape == train.x.shape
    assert torch.equal(corpus.x[:, :4], train.x[:, :4])
    assert (corpus.y[:, :3] == language.IGNORE).all() and (corpus.y[:, 3:] >= 0).all()
    torch.testing.assert_close(corpus.x[:, 4:], corpus.y[:, 3:-1])
    again = language.sequence_kd_corpus(teacher, train, prompt_length=4, temperature=0.7)
    assert torch.equal(corpus.x, again.x)


def test_the_cache_key_holds_the_teacher_an_objective_or_a_corpus_closes_over(lm):
    train, _, student, teacher = lm
    other = copy.deepcopy(teacher)  # the same architecture, other weights
    with torch.no_grad():
        other.head.weight.mul_(3.0)
    knobs = dict(FIT, cache=True)
    first, _ = language.distil("word_kd", student, train, teacher, **knobs)
    again, _ = language.distil("word_kd", student, train, teacher, **knobs)
    elsewhere, _ = language.distil("word_kd", student, train, other, **knobs)
    torch.testing.assert_close(first.state_dict(), again.state_dict())
    assert not torch.equal(first.head.weight, elsewhere.head.weight)
    corpus = language.sequence_kd_corpus(teacher, train, prompt_length=4)
    assert not torch.equal(corpus.x, language.sequence_kd_corpus(other, train, prompt_length=4).x)
    # The on-policy schedule is in the objective's key: an objective that has taken steps keys otherwise.
    step = language.gkd_objective(teacher, prompt_length=4)
    fresh = cache.key("model", cache._as_json({"objective": step}))
    step(student(), train.tensors)
    assert cache.key("model", cache._as_json({"objective": step})) != fresh


def test_throughput_times_every_objective_the_same_way(lm):
    train, _, student, teacher = lm
    batch = (train.x[:8], train.y[:8])
    speeds = language.throughput(student, {m: language.objective(m, teacher, prompt_length=4)
                                           for m in ("labels", "word_kd", "gkd")}, batch, steps=2, rounds=1)
    assert set(speeds) == {"labels", "word_kd", "gkd"} and all(v > 0 for v in speeds.values())
    with pytest.raises(TypeError, match="method 'reverse_kl' needs the teacher module"):
        language.objective("reverse_kl")
    with pytest.raises(ValueError, match="method must be one of"):
        language.objective("minillm", teacher)


def test_next_char_cross_entropy_skips_ignored_targets(lm):
    train, _, student, _ = lm
    model = student()
    x, y = train.x[:4], train.y[:4].clone()
    y[:, :5] = language.IGNORE
    expected = F.cross_entropy(model(x)[:, 5:].flatten(0, 1), y[:, 5:].flatten())
    torch.testing.assert_close(language.next_char_cross_entropy(model, (x, y))["loss"], expected)


def test_sequence_kd_keys_its_corpus_temperature_and_needs_a_teacher(lm):
    train, _, student, teacher = lm
    knobs = dict(FIT, cache=True, prompt_length=4)
    cold, _ = language.distil("sequence_kd", student, train, teacher, sequence_temperature=0.5, **knobs)
    warm, _ = language.distil("sequence_kd", student, train, teacher, sequence_temperature=1.0, **knobs)
    assert not torch.equal(cold.token.weight, warm.token.weight)
    with pytest.raises(TypeError, match="method 'sequence_kd' needs the teacher module, got NoneType"):
        language.distil("sequence_kd", student, train, **FIT)
