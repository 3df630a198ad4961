"""nn/loss.py: each loss module against its torch.nn twin with the same options (forward and
the input gradient, float32 and float64), its state_dict keys (class weights are buffers, as
torch's) and repr, and bad options. The functions themselves are proven in test_loss.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tinyvision as tv
import tinyvision.nn as nn
from tests.helpers import DTYPES, check_against_torch

RNG = np.random.default_rng(0)
LOGITS, CLASSES = RNG.standard_normal((4, 3)), np.array([0, 2, 1, 2])
PROBS, SOFT = RNG.uniform(0.1, 0.9, (4, 3)), RNG.random((4, 3))
X, Y = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
LOGP = np.log(RNG.dirichlet(np.ones(3), 4))
W = RNG.uniform(0.5, 2.0, 3)

CASES = [  # (id, constructor taking (lib, array -> lib tensor), input, target)
    ("CrossEntropyLoss", lambda lib, t: lib.CrossEntropyLoss(), LOGITS, CLASSES),
    ("CrossEntropyLoss-all-options", lambda lib, t: lib.CrossEntropyLoss(weight=t(W), ignore_index=1,
                                                                           label_smoothing=0.1), LOGITS, CLASSES),
    ("CrossEntropyLoss-probabilities-sum", lambda lib, t: lib.CrossEntropyLoss(reduction="sum"), LOGITS, SOFT),
    ("NLLLoss-weight-none", lambda lib, t: lib.NLLLoss(weight=t(W), reduction="none"), LOGP, CLASSES),
    ("BCELoss-weight", lambda lib, t: lib.BCELoss(weight=t(W)), PROBS, SOFT),
    ("BCEWithLogitsLoss-pos_weight",
     lambda lib, t: lib.BCEWithLogitsLoss(weight=t(W), pos_weight=t(W[::-1].copy())), X, SOFT),
    ("MSELoss-sum", lambda lib, t: lib.MSELoss(reduction="sum"), X, Y),
    ("L1Loss", lambda lib, t: lib.L1Loss(), X, Y),
    ("SmoothL1Loss-beta", lambda lib, t: lib.SmoothL1Loss(beta=0.5), X, Y),
    ("HuberLoss-delta-none", lambda lib, t: lib.HuberLoss(reduction="none", delta=0.7), X, Y),
    ("KLDivLoss-batchmean", lambda lib, t: lib.KLDivLoss(reduction="batchmean"), LOGP,
     SOFT / SOFT.sum(1, keepdims=True)),
    ("KLDivLoss-log_target", lambda lib, t: lib.KLDivLoss(reduction="sum", log_target=True), LOGP, LOGP[::-1].copy()),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, make, input, target", CASES, ids=[c[0] for c in CASES])
def test_loss_module_matches_torch(name, make, input, target, dtype):
    def cast(a):
        return a.astype(dtype)
    ours = make(nn, lambda a: tv.tensor(cast(a)))
    theirs = make(torch.nn, lambda a: torch.tensor(cast(a)))
    target = cast(target) if target.dtype.kind == "f" else target
    check_against_torch(ours, theirs, [cast(input), target], requires_grad=[True, False])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())
    assert repr(ours) == repr(theirs)
    assert ours.reduction == theirs.reduction


def test_buffers_move_with_the_module_and_load():
    m = nn.CrossEntropyLoss(weight=tv.ones(3))
    m.load_state_dict({"weight": tv.tensor([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(m.weight.numpy(), [1.0, 2.0, 3.0])
    assert m.double().weight.dtype == np.float64


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"MSELoss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: reduction must be one of .*got 'batchmean'"):
        nn.CrossEntropyLoss(reduction="batchmean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.KLDivLoss(reduction="batchmean")  # allowed for KLDivLoss only


LOSSES = ["CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
          "HuberLoss", "KLDivLoss"]


@pytest.mark.parametrize("name", LOSSES)
def test_constructor_signature_is_torchs(name):
    """The same parameters in the same order (positional calls mean the same thing)."""
    import inspect

    ours = list(inspect.signature(getattr(nn, name).__init__).parameters)
    assert ours == list(inspect.signature(getattr(torch.nn, name).__init__).parameters)


@pytest.mark.parametrize("size_average, reduce, expected", [(None, False, "none"), (False, None, "sum"),
                                                            (True, True, "mean"), (False, False, "none")])
def test_deprecated_size_average_and_reduce_as_torch(size_average, reduce, expected):
    with pytest.warns(UserWarning):
        ours = nn.MSELoss(size_average, reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.MSELoss(size_average, reduce)
    assert ours.reduction == theirs.reduction == expected
    with pytest.warns(UserWarning, match="size_average and reduce are deprecated"):
        out = tv.nn.functional.cross_entropy(tv.tensor(LOGITS), tv.tensor(CLASSES), reduce=False)
    assert out.shape == (4,)
