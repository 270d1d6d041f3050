"""The categorical (multinomial logit) family: one linear predictor per category but the first."""

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmm as bm
from bayesmm.design.build import DataError

from .conftest import at_random_point
from .test_parts import _eta


@pytest.fixture(scope="module")
def choices():
    rng = np.random.default_rng(8)
    n = 120
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "z": rng.normal(size=n), "g": rng.choice(list("abcde"), n)}
    )
    frame["fruit"] = rng.choice(["cherry", "apple", "banana", "date"], n)
    return frame


def test_names_follow_brms(choices):
    model = bm.Model("fruit ~ x + (1 | g)", choices, family="categorical")
    # Categories in sorted order: apple is the reference, mu2 banana, mu3 cherry, mu4 date.
    assert model.family.categories == ("apple", "banana", "cherry", "date")
    assert list(model.parts) == ["mu3", "mu4"]
    assert list(model.priors.index) == [
        f"{name.replace('mu', f'mu{k}')}" for k in (2, 3, 4)
        for name in ("mu:Intercept", "mu:x", "sd(mu:Intercept|g)")
    ]  # fmt: skip
    own = bm.Model("fruit ~ x + (1 | g)", choices, family="categorical", dpars={"mu4": "~ z"})
    assert own.parts["mu4"].fixef_names == ["Intercept", "z"] and not own.parts["mu4"].random


def test_the_likelihood_is_the_softmax_by_hand(choices):
    model = bm.Model("fruit ~ x + (1 + x | g)", choices, family="categorical", dpars={"mu4": "~ z"})
    loglik, values = at_random_point(model, seed=2)
    designs = [model.design, *model.parts.values()]
    logits = np.column_stack([np.zeros(len(choices))] + [_eta(values, d) for d in designs])
    y = model.design.y.astype(int)
    by_hand = special.log_softmax(logits, axis=1)[np.arange(len(y)), y - 1]
    assert loglik == pytest.approx(by_hand.sum(), rel=1e-9)
    params = {p: logits[None, :, k + 2] for k, p in enumerate(model.family.parts)}
    pointwise = model.family.log_likelihood(model.design.y, logits[None, :, 1], params)
    np.testing.assert_allclose(pointwise[0], by_hand, rtol=1e-10)
    probabilities = model.family.probabilities(logits[None, :, 1], params)[0]
    np.testing.assert_allclose(probabilities, special.softmax(logits, axis=1), rtol=1e-12)
    first = {p: v[:, :3] for p, v in params.items()}
    eta = np.repeat(logits[None, :3, 1], 20000, axis=0)
    draws = model.family.draw(eta, first, None, np.random.default_rng(1))
    frequencies = np.stack([(draws == k).mean(axis=0) for k in (1, 2, 3, 4)], axis=-1)
    np.testing.assert_allclose(frequencies, probabilities[:3], atol=0.012)


def test_refusals(choices):
    with pytest.raises(DataError, match=r"'answer' has 2 categories; a categorical model needs three"):
        bm.Model(
            "answer ~ x", choices.assign(answer=np.resize(["a", "b"], len(choices))), family="categorical"
        )
    with pytest.raises(ValueError, match=r"has no mean: use predict\(kind='probs'\)"):
        bm.get_family("categorical").mean(np.zeros((1, 2)), {})
