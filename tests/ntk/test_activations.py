"""Activation catalogue: parsing, structure flags, derivatives."""

import numpy as np
import pytest

from ntk import CATALOGUE, activation, parse_activations, step_activation


@pytest.mark.parametrize("name", CATALOGUE)
def test_derivative_matches_central_differences(name):
    act = activation(name)
    x = np.linspace(-3.1, 3.3, 57)  # avoids the breakpoints 0 and +-1 of the defaults
    h = 1e-6
    fd = (act.fn(x + h) - act.fn(x - h)) / (2 * h)
    np.testing.assert_allclose(act.grad(x), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", CATALOGUE)
def test_second_derivative_matches_central_differences(name):
    act = activation(name)
    if act.has_jumps:
        # sigma'' holds derivatives of Dirac masses: there is nothing to report.
        assert act.second_derivative is None
        return
    x = np.linspace(-3.1, 3.3, 57)  # avoids the kink at 0 of relu, lrelu and abs
    h = 1e-5
    fd = (act.derivative(x + h) - act.derivative(x - h)) / (2 * h)
    # Truncation h^2 max|sigma^(4)| / 6 < 1e-9 and rounding 1e-16 / h ~ 1e-11 on this range.
    np.testing.assert_allclose(act.second_derivative(x), fd, rtol=1e-7, atol=1e-8)


def test_second_derivative_values():
    x = np.array([-1.5, 0.5, 2.0])
    np.testing.assert_array_equal(activation("relu").second_derivative(x), 0.0)
    np.testing.assert_array_equal(activation("lrelu:a=0.3").second_derivative(x), 0.0)
    np.testing.assert_array_equal(activation("quad").second_derivative(x), 2.0)
    np.testing.assert_allclose(activation("sin").second_derivative(x), -np.sin(x), rtol=1e-15)
    assert activation(np.tanh).second_derivative is None
    assert step_activation([0.0], [-1.0, 1.0]).second_derivative is None


@pytest.mark.parametrize("name", CATALOGUE)
def test_mpmath_function_matches_numpy(name):
    act = activation(name)
    x = np.linspace(-3.1, 3.3, 23)
    np.testing.assert_allclose([float(act.mp_fn(v)) for v in x], act.fn(x), rtol=1e-14,
                               atol=1e-15)


def test_structure_flags():
    assert activation("relu").breakpoints == (0.0,)
    assert not activation("relu").has_jumps
    assert activation("sign").has_jumps
    b = activation("binary:s1=-0.5,s2=2,b=3")
    assert b.breakpoints == (-0.5, 2.0) and b.has_jumps
    np.testing.assert_array_equal(b.fn(np.array([-1.0, 0.0, 3.0])), [3.0, 0.0, 3.0])
    t = activation("ternary", s1=-1, s2=1, b=2)
    np.testing.assert_array_equal(t.fn(np.array([-2.0, 0.0, 2.0])), [-2.0, 0.0, 2.0])
    assert activation("tanh").breakpoints == ()
    assert activation("quad").breakpoints == ()


def test_parameters_and_names():
    assert activation("lrelu").params == {"a": 0.1}
    assert activation("lrelu:a=0.2").name == "lrelu:a=0.2"
    assert activation("LReLU:a=0.2") is activation("lrelu:a=0.2")
    np.testing.assert_array_equal(activation("lrelu:a=0.2").fn(np.array([-1.0, 2.0])),
                                  [-0.2, 2.0])


def test_parse_activation_lists():
    acts = parse_activations("binary:s1=-1,s2=1,b=2,tanh, relu")
    assert [a.name for a in acts] == ["binary:s1=-1,s2=1,b=2", "tanh", "relu"]
    assert [a.name for a in parse_activations(["relu", np.tanh])] == ["relu", "tanh"]


def test_callable_is_wrapped():
    act = activation(np.tanh)
    assert not act.has_symbolic
    np.testing.assert_allclose(act.grad(np.array([0.3])), 1 - np.tanh(0.3) ** 2, rtol=1e-9)


@pytest.mark.parametrize("spec, message", [
    ("softplus", "unknown activation"),
    ("lrelu:b=1", "no parameter"),
    ("lrelu:a", "malformed parameter"),
    ("lrelu:a=x", "must be a number"),
    ("lrelu:a=inf", "finite"),
    ("binary:s1=1,s2=-1", "s1 <= s2"),
    ("ternary:b=0", "non-zero"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        activation(spec)


def test_bad_lists():
    with pytest.raises(ValueError, match="empty"):
        parse_activations("relu,,tanh")
    with pytest.raises(ValueError, match="before any activation"):
        parse_activations("a=1,relu")
    with pytest.raises(ValueError, match="at least one"):
        parse_activations([])
    with pytest.raises(ValueError, match="name or a callable"):
        activation(3)


def test_step_activation():
    act = step_activation([-1.0, 0.5], [2.0, 0.0, 2.0])
    np.testing.assert_array_equal(act.fn(np.array([-2.0, -1.0, 0.0, 0.5, 3.0])),
                                  [2.0, 0.0, 0.0, 2.0, 2.0])
    assert act.has_jumps and act.breakpoints == (-1.0, 0.5)
    assert step_activation([-1.0, 1.0], [-3.0, 0.0, 3.0]).odd
    # Equal neighbouring levels: no jump, no breakpoint there.
    assert step_activation([0.0, 1.0], [1.0, 1.0, 2.0]).breakpoints == (1.0,)
    with pytest.raises(ValueError, match="k >= 2 levels"):
        step_activation([0.0], [1.0])
    with pytest.raises(ValueError, match="ascending"):
        step_activation([1.0, 0.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        step_activation([0.0], [1.0, np.nan])
