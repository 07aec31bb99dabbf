"""Weight laws: sample moments against the stated ones, exact supports, parsing."""

import math

import numpy as np
import pytest

from ntk.weights import LAWS, WeightLaw, parse_weight_law, sample_weights

# Excess kurtosis k4 = E[w^4] - 3, derived by hand: uniform on [-a, a] has E[w^4] = a^4/5 = 9/5;
# ternary has E[w^4] = (1 - eps) / (1 - eps)^2; the scaled t_nu keeps the t's 6/(nu - 4).
KURTOSIS = {
    "gaussian": 0.0,
    "rademacher": -2.0,
    "uniform": -1.2,
    "student:10": 1.0,
    "student:5": 6.0,
    "ternary:0": -2.0,
    "ternary:0.5": -1.0,
    "ternary:0.9": 7.0,
}

# Sample moments must lie within Z standard errors of their true values; the standard errors
# are estimated from the same sample (std of w, w^2, w^4 over sqrt(N)), so a wrong scale or a
# wrong sparsity shifts a moment by many standard errors while a correct law passes with
# probability > 1 - 1e-5 per check (Gaussian tails; heavier for student:10's 4th moment, whose
# 8th moment is still finite). student:5 is left out: its w^4 has infinite variance, so no
# standard error exists for its sample kurtosis.
N = 1_000_000
Z = 5.0
MOMENT_LAWS = sorted(set(KURTOSIS) - {"student:5"})


@pytest.mark.parametrize("text", sorted(KURTOSIS))
def test_excess_kurtosis_property(text):
    assert parse_weight_law(text).excess_kurtosis == pytest.approx(KURTOSIS[text], abs=1e-12)


@pytest.mark.parametrize("text", ["student:4", "student:3", "student:2.5"])
def test_student_kurtosis_infinite_when_nu_at_most_4(text):
    assert parse_weight_law(text).excess_kurtosis == math.inf


@pytest.mark.parametrize("seed, text", list(enumerate(MOMENT_LAWS)))
def test_sample_moments(seed, text):
    law = parse_weight_law(text)
    w = sample_weights(law, (1000, N // 1000), np.random.default_rng(seed))
    assert w.shape == (1000, N // 1000) and w.dtype == np.float64
    w = w.ravel()
    w2 = w * w
    w4 = w2 * w2
    se = {k: np.std(v) / math.sqrt(N) for k, v in (("1", w), ("2", w2), ("4", w4))}
    # A tiny floor: Rademacher's w^2 is exactly 1, its standard error exactly 0.
    assert abs(np.mean(w)) <= Z * se["1"]
    assert abs(np.mean(w2) - 1.0) <= Z * se["2"] + 1e-12
    assert abs(np.mean(w4) - 3.0 - law.excess_kurtosis) <= Z * se["4"] + 1e-12


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.9])
def test_ternary_support_and_sparsity(eps):
    w = sample_weights(f"ternary:{eps}", 200_000, np.random.default_rng(3))
    level = 1 / math.sqrt(1 - eps)
    assert set(np.unique(w)) <= {-level, 0.0, level}
    # Binomial fractions: within 5 standard errors.
    se = math.sqrt(eps * (1 - eps) / w.size)
    assert abs(np.mean(w == 0) - eps) <= 5 * se + 1e-12
    se_plus = math.sqrt(0.25 * (1 - eps) * (3 + eps) / w.size)
    assert abs(np.mean(w > 0) - (1 - eps) / 2) <= 5 * se_plus


def test_rademacher_and_uniform_supports():
    rng = np.random.default_rng(4)
    assert set(np.unique(sample_weights("rademacher", 10_000, rng))) == {-1.0, 1.0}
    u = sample_weights("uniform", 100_000, rng)
    assert np.all(np.abs(u) <= math.sqrt(3))
    # The extremes are reached: the support is the whole interval.
    assert np.max(np.abs(u)) > 0.999 * math.sqrt(3)


# One instance of every law in LAWS.
EXAMPLES = {"gaussian": "gaussian", "rademacher": "rademacher", "uniform": "uniform",
            "student": "student:6", "ternary": "ternary:0.3"}


def test_examples_cover_all_laws():
    assert set(EXAMPLES) == set(LAWS)


@pytest.mark.parametrize("law", EXAMPLES.values())
def test_float32_and_reproducible(law):
    a = sample_weights(law, (7, 5), np.random.default_rng(9), dtype=np.float32)
    b = sample_weights(law, (7, 5), np.random.default_rng(9), dtype=np.float32)
    assert a.dtype == np.float32 and a.shape == (7, 5)
    np.testing.assert_array_equal(a, b)


def test_parse_canonical_forms():
    assert parse_weight_law("gaussian") == WeightLaw("gaussian")
    assert parse_weight_law(" Rademacher ") == WeightLaw("rademacher")
    assert parse_weight_law("student:5") == WeightLaw("student", {"nu": 5.0})
    assert parse_weight_law("student:nu=5") == WeightLaw("student", {"nu": 5.0})
    assert parse_weight_law("ternary:eps=0.9") == WeightLaw("ternary", {"eps": 0.9})
    assert str(parse_weight_law("student:5")) == "student:5"
    assert str(parse_weight_law("ternary:0.25")) == "ternary:0.25"
    law = parse_weight_law("uniform")
    assert parse_weight_law(law) is law
    assert hash(parse_weight_law("ternary:0.5")) == hash(parse_weight_law("ternary:eps=0.5"))


@pytest.mark.parametrize("text, fragment", [
    ("cauchy", "unknown weight law"),
    ("", "unknown weight law"),
    ("gaussian:1", "takes no parameter"),
    ("student", "needs a number"),
    ("student:", "needs a number"),
    ("student:five", "needs a number"),
    ("student:2", "nu > 2"),
    ("student:1.5", "nu > 2"),
    ("student:nan", "nu > 2"),
    ("student:inf", "nu > 2"),
    ("ternary:1", "[0, 1)"),
    ("ternary:-0.1", "[0, 1)"),
    ("ternary:nan", "[0, 1)"),
    ("ternary:0.5.1", "needs a number"),
    ("ternary:nu=0.5", "single parameter 'eps'"),
])
def test_parse_errors(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_weight_law(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_bad_arguments_of_sample_weights():
    with pytest.raises(TypeError, match="Generator"):
        sample_weights("gaussian", 3, np.random.RandomState(0))
    with pytest.raises(ValueError, match="float32 or float64"):
        sample_weights("gaussian", 3, np.random.default_rng(0), dtype=np.int32)
    with pytest.raises(ValueError, match="by name"):
        parse_weight_law(3)
