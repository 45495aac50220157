"""Scores, with torch as the oracle: random logits and labels in random batches, scored by `evaluate`, and the same
numbers computed again here from their definitions (loss from log-sum-exp, top-5 from each label's rank)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnforge.train.scores import Scores, evaluate

PROFILE = {"deadline": None, "derandomize": True, "database": None}
pytestmark = pytest.mark.usefixtures("one_thread")


@st.composite
def labelled_logits(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
    """Logits [N, classes] and labels [N], with the batch sizes to serve them in; some classes may have no
    samples, and the logits lean towards the label by a drawn margin, so accuracy is anything from chance to 1."""
    classes = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))
    present = draw(st.integers(1, classes))  # labels come from the first `present` classes only
    lean = draw(st.sampled_from([0.0, 1.0, 4.0]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    labels = torch.randint(present, (sum(sizes),), generator=generator)
    logits = torch.randn(sum(sizes), classes, generator=generator) * 3
    logits += lean * nn.functional.one_hot(labels, classes)
    return logits, labels, sizes, classes


@settings(max_examples=40, **PROFILE)
@given(labelled_logits())
def test_scores_are_torch_s(case: tuple[torch.Tensor, torch.Tensor, list[int], int]) -> None:
    logits, labels, sizes, classes = case
    batches = zip(logits.split(sizes), labels.split(sizes), strict=True)
    scores = evaluate(nn.Identity(), batches, None, classes)

    true_logit = logits.gather(1, labels[:, None])  # [N, 1]
    loss = (torch.logsumexp(logits.double(), dim=1) - true_logit.double().squeeze(1)).mean()
    assert scores.loss == pytest.approx(float(loss), rel=1e-5, abs=1e-6)
    predicted = logits.argmax(dim=1)
    assert scores.accuracy == pytest.approx(float((predicted == labels).double().mean()))
    higher = (logits > true_logit).sum(dim=1)  # classes scored above the label: in the top 5 when fewer than 5
    assert scores.top5 == (pytest.approx(float((higher < 5).double().mean())) if classes > 5 else None)
    in_top5 = (logits.topk(min(5, classes), dim=1).indices == labels[:, None]).any(dim=1)
    assert scores.top5 is None or scores.top5 == pytest.approx(float(in_top5.double().mean()))

    confusion = [[0] * classes for _ in range(classes)]  # counted sample by sample
    for true, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
        confusion[true][guess] += 1
    assert scores.confusion.tolist() == confusion and scores.samples == len(labels)
    counts = [(sum(row), row[c]) for c, row in enumerate(confusion)]
    assert scores.per_class_counts == counts
    assert scores.per_class == [pytest.approx(hit / n) if n else None for n, hit in counts]


def test_scores_in_words() -> None:
    confusion = torch.tensor([[3, 1], [0, 0]])
    assert str(Scores(0.123456, 0.75, None, confusion)) == "loss 0.1235, accuracy 0.7500"
    assert str(Scores(0.5, 0.75, 0.99999, confusion)) == "loss 0.5000, accuracy 0.7500, top-5 1.0000"
    assert Scores(0.5, 0.75, None, confusion).per_class == [0.75, None]
