"""The catalogue of claims: every claim of the five source documents (and each claim a chapter
checks beyond them) once, with a short stable id, its text, its source, the paper's figure, the
chapter that checks it (or why none does) and which way is better. :mod:`kdlab.book.claims` checks
them and joins what the chapters recorded."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

DIRECTIONS = ("lower", "higher")


# --- the sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Who made a claim: the authors, the year, the title, and which of the five source documents
    (``shared/seeds/``, numbered 000 to 004) gives it; a paper the slides of 003 survey is cited
    with its own authors and ``document="003"``."""

    key: str
    author: str
    year: int | None
    title: str
    document: str

    def cite(self) -> str:
        year = self.year if self.year is not None else "n.d."
        where = f" [source document {self.document}]" if self.document != "-" else ""
        return f"{self.author} ({year}), {self.title}{where}"


_BEYOND = "(not in the sources)"
SOURCES = {
    s.key: s
    for s in (
        Source("qiao", "Qiao", None,
               "Transferring neural network knowledge with t-SNE regularizer (tsneNet)", "000"),
        Source("he", "He", 2017, "Teacher-Student Deep Learning (a report on Caffe experiments)", "001"),
        Source("geras", "Geras et al.", 2016, "Blending LSTMs into CNNs (as reported by He 2017)", "001"),
        Source("keras", "anonymous", None,
               "Distilling the knowledge? (a Keras notebook after Hinton et al.)", "002"),
        Source("breiman", "Breiman & Shang", 1996, "Born Again Trees", "003"),
        Source("bucila", "Bucila, Caruana & Niculescu-Mizil", 2006, "Model Compression", "003"),
        Source("ba", "Ba & Caruana", 2014, "Do Deep Nets Really Need to be Deep?", "003"),
        Source("hinton", "Hinton, Vinyals & Dean", 2015,
               "Distilling the Knowledge in a Neural Network", "003"),
        Source("romero", "Romero et al.", 2015, "FitNets: Hints for Thin Deep Nets", "003"),
        Source("yim", "Yim et al.", 2017, "A Gift from Knowledge Distillation (FSP)", "003"),
        Source("furlanello", "Furlanello et al.", 2018, "Born Again Neural Networks", "003"),
        Source("dml_blog", "anonymous", None,
               "Mutual Learning in Neural nets and Hint-based pretraining (a blog post)", "004"),
        Source("zhang", "Zhang, Xiang, Hospedales & Lu", 2018, "Deep Mutual Learning (cited by 004)", "004"),
        Source("yuan", "Yuan et al.", 2020,
               "Revisiting Knowledge Distillation via Label Smoothing Regularization (not in the sources)",
               "-"),
        Source("zhao", "Zhao et al.", 2022, f"Decoupled Knowledge Distillation {_BEYOND}", "-"),
        Source("sun", "Sun et al.", 2024, f"Logit Standardization in Knowledge Distillation {_BEYOND}", "-"),
        Source("huang", "Huang et al.", 2022,
               f"Knowledge Distillation from A Stronger Teacher, DIST {_BEYOND}", "-"),
        Source("kim", "Kim & Rush", 2016, f"Sequence-Level Knowledge Distillation {_BEYOND}", "-"),
        Source("gu", "Gu et al.", 2024,
               f"MiniLLM: Knowledge Distillation of Large Language Models {_BEYOND}", "-"),
        Source("agarwal", "Agarwal et al.", 2024, f"On-Policy Distillation of Language Models, GKD {_BEYOND}",
               "-"),
        Source("kdlab", "kdlab", None, "this book's own checks (no source makes them)", "-"),
    )
}


# --- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One claim: ``id`` (stable, ``"topic.what"``), the claim, its source (a key of :data:`SOURCES`),
    the paper's figure, the chapter that checks it (``None``: ``why`` says why none does), the
    quantity compared (``measure``) and which way of it is better (``better``: ``"lower"`` or
    ``"higher"``): a claim "A beats B" holds when A - B lies on the ``better`` side of 0."""

    id: str
    source: str
    chapter: str | None
    measure: str
    better: str
    claim: str
    paper: str
    why: str = ""

    def cite(self) -> str:
        return SOURCES[self.source].cite()


_NO_CAFFE_CIFAR = "no chapter trains the report's Caffe CIFAR-10 nets"
_HINTON_TABLE = "MNIST test errors: teacher 67, small net 146, small net distilled 74"
_FSP_STUDENTS = "(ResNet-8 from ResNet-26, ResNet-14 from ResNet-32)"
_SAMPLES = "teacher's bits per character of the student's samples"
_DML_BLOG = "CIFAR-10 accuracy: student alone 67 %, two students mutual 74.17 % and 73 %"

CLAIMS: tuple[Claim, ...] = (
    # Source document 000: tsneNet.
    Claim("tsne.lowers_errors", "qiao", "tsne_regularizer", "test errors", "lower",
          "the t-SNE regularizer (beta = 0.1, alpha = inf) lowers the student's test errors",
          paper="student-teacher gap in error rate 1.4 % -> 0.7 %"),
    Claim("tsne.halves_gap", "qiao", "tsne_regularizer", "% of the gap closed", "higher",
          "the t-SNE regularizer closes half of the student-teacher error gap (or more)",
          paper="50 % of the gap closed"),
    Claim("tsne.beta_range", "qiao", "tsne_regularizer", "test errors", "lower",
          "every beta in 0.05 .. 0.5 beats beta = 0 (0.02 helps too little, larger beta overwhelms training)",
          paper="good for 0.05 <= beta <= 0.5"),
    Claim("tsne.alpha_inf_best", "qiao", "tsne_regularizer", "test errors", "lower",
          "a higher Student-t alpha is better: alpha = inf (a Gaussian Q) beats every other alpha",
          paper="alpha = +inf optimal"),
    Claim("tsne.cheap_with_cached_p", "qiao", "tsne_regularizer", "ms per step", "lower",
          "with P cached, the regularizer only adds Q and a KL divergence to a step",
          paper="'minimal computational cost'"),
    Claim("tsne.with_soft_targets", "qiao", "tsne_regularizer", "test errors", "lower",
          "(an open question) soft targets and the t-SNE term together beat soft targets alone",
          paper="its TODO list: 'combine with Hinton's soft target method'"),
    Claim("tsne.teacher_accuracy", "qiao", None, "test accuracy (%)", "higher",
          "the 32-64-512 teacher reaches 99.0 % test accuracy on MNIST",
          paper="99.0 %",
          why="the book's shared teacher has another recipe (Adam, 5 epochs of jittered images, a cosine "
              "schedule) than the source's 10,000 epochs; the tsneNet chapter prints its accuracy beside "
              "the source's"),
    # Source document 001: He's report, and the paper it cites.
    Claim("he.lambda_sweep", "he", "what_soft_targets_carry", "test errors", "lower",
          "on MNIST the labels alone (lambda = 0) beat the soft targets alone (lambda = 1): accuracy "
          "falls as the teacher's weight rises",
          paper="lambda = 0 best, lambda = 1 worst (T = 1)"),
    Claim("he.soft_loss_plateau", "he", "soft_targets", "% of its start kept", "higher",
          "the teacher-student cross-entropy barely decreases (stays near 80 % of its start)",
          paper="~80 % of its start (a normal loss: ~10 %)"),
    Claim("he.noisy_teacher", "he", "what_soft_targets_carry", "test errors", "lower",
          "a noisy teacher hurts its student (offered for the CIFAR-10 plateau)",
          paper="no number (a hypothesis; the CIFAR-10 teacher is at 80 %)"),
    Claim("yuan.uniform_teacher", "yuan", "what_soft_targets_carry", "test errors", "lower",
          "a teacher that knows nothing (uniform soft targets: label smoothing through the distillation "
          "loss) still beats training on the labels alone, so part of what any teacher gives is "
          "regularisation",
          paper="no MNIST figure; a 'virtual teacher' of smoothed labels helps CIFAR-100 and ImageNet "
                "students"),
    Claim("he.teacher_labels_new_data", "he", "what_soft_targets_carry", "test errors", "lower",
          "a teacher can label new data: its soft labels of unlabelled images teach more than as many "
          "hard labels",
          paper="no number"),
    Claim("he.temperature_calibration", "he", "soft_targets", "ECE", "lower",
          "temperature changes a model's calibration, never its ranking of the classes",
          paper="no number (softmax at T = 1 and T = 20)"),
    Claim("he.cifar_small_lambda", "he", None, "test accuracy", "higher",
          "on CIFAR-10 a small lambda (0.05, 0.1) beats normal training",
          paper="lambda 0.05 and 0.1 above lambda = 0",
          why=_NO_CAFFE_CIFAR),
    Claim("he.cifar_mini_plateau", "he", None, "test accuracy", "higher",
          "the CIFAR-10 'mini' student plateaus at 78 % alone and 77 % taught (lambda = 0.1)",
          paper="78 % vs 77 %; full net 80-81 %",
          why=_NO_CAFFE_CIFAR),
    Claim("he.cifar_early_lead", "he", None, "test accuracy", "higher",
          "the taught CIFAR-10 student leads early, then the one trained alone overtakes it",
          paper="ahead for 20,000 iterations, then 77 % vs 78 %",
          why=_NO_CAFFE_CIFAR),
    Claim("geras.blending", "geras", None, "test accuracy", "higher",
          "model blending: a student of another family (a CNN) can beat its LSTM teacher",
          paper="no number",
          why="no chapter distils across model families on sequence data"),
    # Source document 002: the Keras notebook.
    Claim("keras.dropout_maxnorm", "keras", None, "test errors", "lower",
          "dropout 0.5 and a max-norm constraint help the cumbersome model make fewer errors",
          paper="no number (the notebook stops before its experiment)",
          why="the book trains Hinton's teacher with dropout and max-norm (profile 'full') but never "
              "without them, so there is nothing to compare"),
    # Source document 003: the papers the slides survey.
    Claim("hinton.mnist_table", "hinton", "soft_targets", "test errors", "lower",
          "a small net distilled from a big teacher beats the same net trained on the labels alone",
          paper=_HINTON_TABLE),
    Claim("hinton.teacher_ahead", "hinton", "soft_targets", "test errors", "lower",
          "the distilled student stays behind its teacher",
          paper=_HINTON_TABLE),
    Claim("hinton.unseen_digit_bias", "hinton", "what_soft_targets_carry",
          "test errors on the left-out digit", "lower",
          "a student distilled without any 3 recognises 3s once their bias is raised",
          paper="errors on 3s 133 -> 14 after a bias of +3.5 (the paper's section 3, not in the slides)"),
    Claim("ba.logit_regression", "ba", "what_soft_targets_carry", "test errors", "lower",
          "a student regressing a deep net's logits (L2, no labels) beats one trained on the labels",
          paper="CIFAR-10 error: 21.8 % on labels -> 15.1 % mimicking (teacher 12.0 %)"),
    Claim("ba.ensemble_teacher", "ba", "what_soft_targets_carry", "test errors", "lower",
          "mimicking an ensemble beats mimicking a single teacher",
          paper="CIFAR-10 error: 15.1 % -> 14.2 %"),
    Claim("breiman.breast_cancer", "breiman", "born_again", "test error (%)", "lower",
          "a born-again tree (CART on smeared data labelled by an ensemble) beats CART",
          paper="breast cancer: 3.9 % vs 5.9 % error"),
    Claim("breiman.other_data_sets", "breiman", None, "test error (%)", "lower",
          "born-again trees beat CART on ionosphere, glass, soybean and sonar",
          paper="6.1 vs 11.2, 28.2 vs 30.4, 8.4 vs 8.6, 25.1 vs 32.1 % error",
          why="only the breast-cancer table ships with scikit-learn, and nothing may be downloaded"),
    Claim("ban.ban1_beats_teacher", "furlanello", "born_again", "test errors", "lower",
          "a born-again network (BAN-1) beats its identical teacher",
          paper="CIFAR-100, DenseNet-BC-112-33: 18.25 -> 17.61 % error"),
    Claim("ban.ensemble", "furlanello", "born_again", "test errors", "lower",
          "an ensemble of born-again generations (Ens*k) beats every single generation",
          paper="CIFAR-100: Ens*2 15.77 %, Ens*3 15.68 %; best single generation 16.59 %"),
    Claim("bucila.munge", "bucila", "born_again", "test error (%)", "lower",
          "a net of 128 hidden units trained on MUNGE points labelled by a mixed ensemble beats the same "
          "net trained on the original small training set",
          paper="no number in the slides (Figure 2, the average over eight tables: the MUNGE net nears its "
                "ensemble, above the net trained on the 4k original examples)"),
    Claim("bucila.smaller_faster", "bucila", "your_own_model", "latency", "lower",
          "compression gives a smaller, faster model",
          paper="'smaller, faster models, usually without significant loss in performance'"),
    Claim("fitnets.beats_teacher", "romero", "fitnets", "test errors", "lower",
          "a thin deep FitNet beats its wider teacher with fewer parameters",
          paper="CIFAR-10: 91.61 % (2.5 M) vs 90.18 % (9 M); CIFAR-100: 64.96 vs 63.54 %"),
    Claim("fitnets.beats_scratch", "romero", "fitnets", "test errors", "lower",
          "hints then KD (a FitNet) beat the same thin deep student trained on the labels",
          paper="no number in the slides (the paper's premise)"),
    Claim("fitnets.trains_sooner", "romero", "fitnets", "test errors after one epoch", "lower",
          "a thin deep student trains sooner with hints than from scratch",
          paper="no number ('faster convergence', as source 004 retells it)"),
    Claim("fitnets.adds_to_kd", "romero", "fitnets", "test errors", "lower",
          "the hint stage adds to KD: a FitNet beats the student distilled without hints",
          paper="no number in the slides"),
    Claim("fitnets.conv_regressor", "romero", "fitnets", "parameters", "lower",
          "a convolutional regressor needs fewer parameters than a fully connected one",
          paper="no number"),
    Claim("fitnets.deeper_overregularises", "romero", "fitnets", "test errors", "lower",
          "the deeper the guided layer, the more a FitNet is over-regularised",
          paper="no number"),
    Claim("fsp.matrices_closer", "yim", "fsp", "FSP distance", "lower",
          "FSP stage 1 brings the student's FSP matrices close to the teacher's",
          paper="Fig. 2 (the method)"),
    Claim("fsp.fast", "yim", "fsp", "test accuracy (%)", "higher",
          "FSP optimises fast: after a third of the steps the FSP student is ahead of the student trained "
          "normally for all of them",
          paper="1/3 of the teacher's training steps"),
    Claim("fsp.beats_student", "yim", "fsp", "test accuracy (%)", "higher",
          "FSP pre-training beats the student trained normally",
          paper=f"CIFAR-10: 88.70 vs 87.91 %; CIFAR-100: 63.33 vs 58.65 % {_FSP_STUDENTS}"),
    Claim("fsp.beats_fitnet", "yim", "fsp", "test accuracy (%)", "higher",
          "FSP pre-training beats FitNets",
          paper=f"CIFAR-10: 88.70 vs 88.57 %; CIFAR-100: 63.33 vs 61.28 % {_FSP_STUDENTS}"),
    Claim("fsp.fitnet_beats_student", "yim", "fsp", "test accuracy (%)", "higher",
          "a FitNet beats the student trained normally",
          paper=f"CIFAR-10: 88.57 vs 87.91 %; CIFAR-100: 61.28 vs 58.65 % {_FSP_STUDENTS}"),
    # Source document 004: the blog post, and the paper it retells.
    Claim("dml.cohort_beats_alone", "dml_blog", "mutual_learning", "test accuracy (%)", "higher",
          "a cohort of two students trained by mutual learning beats each student trained alone",
          paper=_DML_BLOG),
    Claim("dml.same_optimiser", "dml_blog", "hint_mutual", "test accuracy (%)", "higher",
          "the cohort also beats students trained alone with the cohort's own optimiser settings",
          paper="not in the source (its students alone used Adam 1e-3, the cohort 3e-4)"),
    Claim("dml.bigger_cohort", "zhang", "mutual_learning", "test errors", "lower",
          "a bigger cohort helps: the largest cohort tried beats a cohort of two",
          paper="no number in the sources"),
    Claim("dml.beats_distillation", "zhang", "mutual_learning", "test errors", "lower",
          "mutual learning beats distillation from a pre-trained larger teacher",
          paper="no number in the sources"),
    Claim("dml.cohort_ensemble", "zhang", "mutual_learning", "test errors", "lower",
          "a cohort's ensemble beats an ensemble of students trained alone",
          paper="no number in the sources"),
    Claim("dml.in_turn", "zhang", "mutual_learning", "test errors", "lower",
          "the paper's in-turn updates (Algorithm 1) beat simultaneous ones",
          paper="no number (the algorithm updates in turn)"),
    Claim("hint_dml.teacher_beats_student", "dml_blog", "hint_mutual", "test accuracy (%)", "higher",
          "the bulkier VGG-style teacher generalises better than the thin-deep student trained alone",
          paper="CIFAR-10: 74 % vs 67 % accuracy"),
    Claim("hint_dml.beats_dml", "dml_blog", "hint_mutual", "test accuracy (%)", "higher",
          "hint pre-training (10 epochs) then mutual learning beats plain mutual learning",
          paper="CIFAR-10: 76.7 % and 77.03 % vs 74.17 % and 73 %"),
    Claim("hint_dml.faster_rise", "dml_blog", "hint_mutual", "test accuracy after one epoch (%)", "higher",
          "hint pre-training gives a faster rise of accuracy at the start",
          paper="no number (the source's curves)"),
    Claim("hint_dml.parameter_counts", "dml_blog", "hint_mutual", "parameters", "lower",
          "the VGG-style teacher and the thin-deep student have 2,440,394 and 1,497,434 parameters",
          paper="2,440,394 / 1,497,434"),
    Claim("hint_dml.reduction_63", "dml_blog", "hint_mutual", "parameters", "lower",
          "the students have 63 % fewer parameters than the teacher",
          paper="'a reduction 63 % in parameter size'"),
    # Beyond the sources: logit losses since Hinton (the modern_logits chapter compares them with KD and with
    # the student alone on the results chapter's common setting; the results chapter checks the latter too).
    Claim("dkd.beats_kd", "zhao", "modern_logits", "test errors", "lower",
          "decoupled KD (the target-class and non-target-class terms weighted apart) beats Hinton's KD",
          paper="CIFAR-100 ResNet-32x4 -> ResNet-8x4: 76.32 % vs 73.33 % top-1"),
    Claim("ls.improves_kd", "sun", "modern_logits", "test errors", "lower",
          "Hinton's KD on z-scored logits beats Hinton's KD on the raw logits",
          paper="CIFAR-100 ResNet-32x4 -> ResNet-8x4: 76.62 % vs 73.33 % top-1"),
    Claim("ls.not_the_temperature", "sun", "modern_logits", "test errors", "lower",
          "KD on z-scored logits beats KD on the raw logits at the same base temperature and weights (the "
          "gain is not the base temperature's)",
          paper="the paper's premise (a shared temperature forces a logit-range match); no figure quoted "
                "here"),
    Claim("dist.beats_kd", "huang", "modern_logits", "test errors", "lower",
          "DIST's correlation loss beats Hinton's KD",
          paper="ImageNet ResNet-34 -> ResNet-18: 72.07 % vs 71.21 % top-1"),
    Claim("dkd.beats_student", "zhao", "modern_logits", "test errors", "lower",
          "a student trained with DKD beats the same student trained on the labels alone",
          paper="CIFAR-100 ResNet-8x4: 76.32 % vs 72.50 % top-1"),
    Claim("ls.beats_student", "sun", "modern_logits", "test errors", "lower",
          "a student trained with KD on z-scored logits beats the same student trained on the labels "
          "alone",
          paper="CIFAR-100 ResNet-8x4: 76.62 % vs 72.50 % top-1"),
    Claim("dist.beats_student", "huang", "modern_logits", "test errors", "lower",
          "a student trained with DIST beats the same student trained on the labels alone",
          paper="ImageNet ResNet-18: 72.07 % vs 69.76 % top-1"),
    # Beyond the sources: distilling a language model (the language_models chapter).
    Claim("lm.word_kd_beats_labels", "kim", "language_models", "held-out bits per character", "lower",
          "a student trained on the teacher's next-token distributions (word-level KD) beats one trained on "
          "the text alone",
          paper="WMT English-German: word-level KD above the student alone in BLEU"),
    Claim("lm.seq_kd_beats_word_kd", "kim", "language_models", _SAMPLES, "lower",
          "a student trained on the teacher's own generated text (sequence-level KD) writes text the teacher "
          "finds more likely than a word-level KD student does",
          paper="WMT English-German: sequence-level KD above word-level KD in BLEU"),
    Claim("lm.reverse_kl_quality", "gu", "language_models", _SAMPLES, "lower",
          "a reverse-KL student writes text the teacher finds more likely than a forward-KL (word-level KD) "
          "student does",
          paper="instruction following: reverse KL (MiniLLM) above forward-KL KD in Rouge-L"),
    Claim("lm.reverse_kl_mode_seeking", "gu", "language_models", "distinct 4-grams (%)", "lower",
          "reverse KL seeks modes: its student's samples are less diverse than a forward-KL student's",
          paper="mode-seeking by design (the paper's argument); no Dist-4 figure quoted here"),
    Claim("lm.gkd_beats_word_kd", "agarwal", "language_models", _SAMPLES, "lower",
          "on-policy generalised KD (the student's own samples, scored by the teacher) beats word-level KD "
          "on the teacher's fixed data",
          paper="summarisation, translation and arithmetic reasoning: on-policy GKD above supervised KD"),
    # The book's own.
    Claim("kdlab.export_matches", "kdlab", "your_own_model", "max |difference|", "lower",
          "the exported student computes what PyTorch computes (max |difference| <= 1e-4)",
          paper="-"),
)
CATALOGUE: dict[str, Claim] = {c.id: c for c in CLAIMS}


def claim(claim_id: str) -> Claim:
    """The catalogue's claim ``claim_id``; an unknown id is a ``KeyError`` listing the close ones."""
    try:
        return CATALOGUE[claim_id]
    except KeyError:
        close = difflib.get_close_matches(str(claim_id), CATALOGUE, n=5, cutoff=0.5)
        prefix = str(claim_id).split(".")[0] + "."
        close += [i for i in CATALOGUE if i.startswith(prefix) and i not in close]
        hint = f"close ids: {close}" if close else f"the ids are {sorted(CATALOGUE)}"
        raise KeyError(f"unknown claim id {claim_id!r}; {hint} (kdlab.book.claims.CLAIMS)") from None


