"""The kernels package: the Kernel protocol, the registry, with_params, identities, the
neighbour search, the tasks' c-free residual hook and the agreement's added scores (issue 11)."""

import subprocess
import sys

import numpy as np
import pytest

from physmis_edu import kernels
from physmis_edu.kernels import (KERNELS, Compounding, Empirical, Gaussian, Kernel, NeighbourBlend,
                                 ProxySamples, Quantise, Shrinkage, Smooth, Truncation, agreement,
                                 k_nearest, rule_residual, with_params)
from physmis_edu.tasks import DoublePendulum, LogisticMap, Prior, Recovery, Sinusoid, Task


@pytest.fixture(scope="module")
def train():
    x, _ = LogisticMap(length=16).sample(300, rng=0)
    return x


# One example of every registered kernel; a new family must add one here (the test below
# checks that the two lists match).
EXAMPLES = {
    "Gaussian": lambda train: Gaussian(0.02),
    "Smooth": lambda train: Smooth(0.02, ell=3.0),
    "Empirical": lambda train: Empirical.from_samples(train, train[:50] + np.float32(0.01)),
    "NeighbourBlend": lambda train: NeighbourBlend(k=4, mix=0.5, sigma=0.01),
    "ProjectedNoise": lambda train: kernels.ProjectedNoise(sigma=0.1, pull=0.8, k=4),
    "DenoisedNoise": lambda train: kernels.DenoisedNoise(sigma=0.1, pull=0.9, k=4, bandwidth=2.0),
    "Truncation": lambda train: Truncation(k=3, sigma=0.01),
    "Shrinkage": lambda train: Shrinkage(tau=0.01, sigma=0.01),
    "Quantise": lambda train: Quantise(bins=32, jitter=1.0),
    "Compounding": lambda train: Compounding(sigma=0.01, rho=0.9),
    "ProxySamples": lambda train: ProxySamples(train[100:200] * np.float32(0.97), mix=0.5),
}


def fitted(kernel, train):
    return kernel.fit(train) if hasattr(kernel, "fit") else kernel


def test_registry_is_complete_and_exported():
    assert set(EXAMPLES) == set(KERNELS)
    for name, cls in KERNELS.items():
        assert cls.__name__ == name and getattr(kernels, name) is cls and name in kernels.__all__
    old_names = ["Gaussian", "Smooth", "Empirical", "nearest_neighbours", "nn_distances",
                 "Calibration", "calibrate", "predict_recovered", "Agreement", "agreement",
                 "ef_ceiling", "NeighbourBlend", "Truncation", "Shrinkage", "Quantise",
                 "Compounding", "ProxySamples", "rule_residual"]
    for name in old_names + ["Kernel", "with_params", "KERNELS", "k_nearest"]:
        assert name in kernels.__all__ and hasattr(kernels, name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_registered_kernel_satisfies_the_protocol(name, train):
    kernel = fitted(EXAMPLES[name](train), train)
    assert isinstance(kernel, Kernel)
    assert KERNELS[name].IDENTITY is None or isinstance(KERNELS[name].IDENTITY, dict)
    out = kernel.perturb(train[:40], np.random.default_rng(1))
    assert out.shape == train[:40].shape and out.dtype == np.float32
    # params() gives the constructor parameters: the same kernel again.
    again = fitted(type(kernel)(**kernel.params()), train)
    assert repr(again) == repr(kernel)
    np.testing.assert_array_equal(again.perturb(train[:40], np.random.default_rng(1)), out)


def test_a_non_kernel_is_not_a_kernel():
    assert not isinstance(object(), Kernel)
    with pytest.raises(ValueError, match="kernel must be a kernel"):
        with_params(object(), sigma=0.1)


@pytest.mark.parametrize("name", sorted(k for k, cls in KERNELS.items() if cls.IDENTITY is not None))
def test_identity_returns_x_exactly(name, train):
    cls = KERNELS[name]
    kernel = fitted(cls(**cls.IDENTITY), train)
    x = train[:40]
    out = kernel.perturb(x, np.random.default_rng(3))
    assert out.dtype == np.float32 and out is not x
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("name, zero", [("Smooth", {"sigma": 0.0}), ("Empirical", {"scale": 0.0}),
                                        ("ProxySamples", {"mix": 0.0})])
def test_families_without_identity_reach_it_through_with_params(name, zero, train):
    assert KERNELS[name].IDENTITY is None
    kernel = with_params(EXAMPLES[name](train), **zero)
    np.testing.assert_array_equal(kernel.perturb(train[:40], np.random.default_rng(3)), train[:40])


def test_with_params_changes_one_parameter_and_keeps_the_others(train):
    smooth = with_params(Smooth(0.02, ell=3.0), sigma=0.5)
    assert (smooth.sigma, smooth.ell) == (0.5, 3.0)
    blend = NeighbourBlend(k=4, mix=0.5, sigma=0.01)
    wider = with_params(blend, mix=0.9)
    assert wider.params() == {"k": 4, "mix": 0.9, "sigma": 0.01} and blend.mix == 0.5
    assert type(wider) is NeighbourBlend and not wider.is_fitted  # unfitted in, unfitted out
    emp = EXAMPLES["Empirical"](train)
    doubled = with_params(emp, scale=2.0)
    assert doubled.scale == 2.0
    np.testing.assert_array_equal(doubled.residuals, emp.residuals)
    np.testing.assert_array_equal(doubled.perturb(train, 4), emp.with_scale(2.0).perturb(train, 4))
    with pytest.raises(ValueError, match="no parameter ell"):
        with_params(Gaussian(0.1), ell=2.0)
    with pytest.raises(ValueError, match="mix"):
        with_params(blend, mix=2.0)  # the constructor validates the new value


@pytest.mark.parametrize("name, change", [
    ("NeighbourBlend", {"mix": 1.0, "sigma": 0.05}), ("Truncation", {"k": 6}),
    ("Shrinkage", {"tau": 0.1}), ("Quantise", {"bins": 8, "jitter": 0.0}),
    ("Compounding", {"rho": 0.2}),
])
def test_with_params_on_a_fitted_kernel_perturbs_like_a_fresh_fit(name, change, train):
    kernel = EXAMPLES[name](train).fit(train)
    changed = with_params(kernel, **change)
    assert changed.is_fitted
    fresh = type(kernel)(**{**kernel.params(), **change}).fit(train)
    x = train[:60] + np.float32(0.003)
    np.testing.assert_array_equal(changed.perturb(x, np.random.default_rng(7)),
                                  fresh.perturb(x, np.random.default_rng(7)))
    for key, value in change.items():
        assert changed.params()[key] == value


def test_fit_from_checks_the_class_and_the_training_size(train):
    with pytest.raises(ValueError, match="other must be a Truncation"):
        Truncation().fit_from(Shrinkage().fit(train))
    with pytest.raises(ValueError, match="fitted first"):
        Truncation().fit_from(Truncation())
    small = NeighbourBlend(k=4).fit(train[:10])
    with pytest.raises(ValueError, match="more than k = 16"):
        with_params(small, k=16)
    projected = kernels.ProjectedNoise(k=4).fit(train[:10])
    with pytest.raises(ValueError, match="at least k = 16"):
        with_params(projected, k=16)


def test_k_nearest_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((200, 8, 2)).astype(np.float32)
    query = np.concatenate([reference[:5], rng.standard_normal((20, 8, 2)).astype(np.float32)])
    d2 = ((query.reshape(25, 1, -1).astype(np.float64) - reference.reshape(1, 200, -1)) ** 2).sum(-1)
    with_self = k_nearest(query, reference, 5, exclude_exact=False)
    np.testing.assert_array_equal(with_self, np.argsort(d2, axis=1)[:, :5])
    np.testing.assert_array_equal(with_self[:5, 0], np.arange(5))  # a copy is its own nearest
    without = k_nearest(query, reference, 5)
    assert not (without[:5] == np.arange(5)[:, None]).any()
    np.testing.assert_array_equal(without[:5], np.argsort(d2, axis=1)[:5, 1:6])
    np.testing.assert_array_equal(without[5:], with_self[5:])
    assert k_nearest(query, reference[:4], 10).shape == (25, 3)  # capped at n - 1
    assert k_nearest(query, reference[:4], 10, exclude_exact=False).shape == (25, 4)
    with pytest.raises(ValueError, match="k must be"):
        k_nearest(query, reference, 0)
    with pytest.raises(ValueError, match="reference must have length"):
        k_nearest(query, reference[:, :4], 3)
    with pytest.raises(ValueError, match="exclude_exact"):
        k_nearest(query, reference, 3, exclude_exact="yes")


def test_neighbour_blend_uses_k_nearest(train):
    blend = NeighbourBlend(k=6).fit(train)
    np.testing.assert_array_equal(blend.neighbours(train[:30]), k_nearest(train[:30], train, 6))


def _logistic_float64(task, n, seed):
    """True logistic trajectories computed and kept in float64 (the task stores float32)."""
    rng = np.random.default_rng(seed)
    r = task.prior.sample(n, rng)
    x = np.empty((n, task.length))
    x[:, 0] = rng.uniform(0.1, 0.9, n)
    for t in range(1, task.length):
        x[:, t] = r * x[:, t - 1] * (1 - x[:, t - 1])
    return x[:, :, None]


def _sinusoid_float64(task, n, seed):
    rng = np.random.default_rng(seed)
    omega = task.prior.sample(n, rng)
    amp, phase = rng.uniform(0.5, 1.5, n), rng.uniform(0, 2 * np.pi, n)
    t = np.arange(task.length)
    return (amp[:, None] * np.sin(omega[:, None] * t + phase[:, None]))[:, :, None]


@pytest.mark.parametrize("task, exact", [(LogisticMap(length=16), _logistic_float64),
                                         (Sinusoid(length=16), _sinusoid_float64)])
def test_c_free_residual_is_zero_on_true_trajectories(task, exact):
    residual = task.c_free_residual()
    assert rule_residual(task) is residual and callable(residual)
    assert np.max(residual(exact(task, 300, 1))) < 1e-8
    x, _ = task.sample(300, rng=2)  # stored as float32: zero up to float32 rounding
    assert np.max(residual(x)) < 1e-6
    noisy = x + 0.01 * np.random.default_rng(0).standard_normal(x.shape)
    assert np.median(residual(noisy)) > 1e-3


class NoRule(Task):
    """A task without a rule: the default hook."""

    length = 4

    def generate(self, c, rng=None):
        return np.repeat(np.asarray(c, dtype=np.float32)[:, None, None], 4, axis=1)

    def recover(self, x):
        return Recovery.from_values(np.asarray(x)[:, 0, 0])


def test_c_free_residual_is_none_without_a_rule():
    assert NoRule(0.0, 1.0).c_free_residual() is None
    assert rule_residual(NoRule(0.0, 1.0)) is None
    assert DoublePendulum(representation="angles", length=16).c_free_residual() is None
    with pytest.raises(ValueError, match="task must be"):
        rule_residual(Prior(0, 1))


def test_agreement_inside_pearson_and_out_of_support_by_hand():
    prior = Prior(0.0, 1.0)
    rng = np.random.default_rng(0)
    observed = np.concatenate([rng.uniform(0.0, 0.6, 700), rng.uniform(1.0, 1.4, 200),
                               [np.nan] * 100])
    predicted = np.concatenate([rng.uniform(0.0, 0.7, 850), [-0.2] * 100, [np.nan] * 50])
    ag = agreement(prior, predicted, observed, bins=10, ceiling=False)
    p = np.concatenate([[0.0], np.full(10, 0.1), [0.0]])
    edges = np.linspace(0, 1, 11)

    def probs(v):
        v = v[np.isfinite(v)]
        inside = np.histogram(v[(v >= 0) & (v <= 1)], edges)[0]
        return np.concatenate([[np.sum(v < 0)], inside, [np.sum(v > 1)]]) / v.size

    dq_hat, dq = probs(predicted) - p, probs(observed) - p
    np.testing.assert_allclose(ag.dq_predicted, dq_hat, atol=1e-15)
    assert ag.inside_pearson == pytest.approx(np.corrcoef(dq_hat[1:-1], dq[1:-1])[0, 1], abs=1e-12)
    assert ag.pearson == pytest.approx(np.corrcoef(dq_hat, dq)[0, 1], abs=1e-12)
    assert ag.oos_observed == pytest.approx(0.3)  # 200 above the range, 100 failed, of 1000
    assert ag.oos_predicted == pytest.approx(0.15)  # 100 below, 50 failed
    assert ag.failed_fraction_observed == pytest.approx(0.1)
    # Exactly the prior inside the range (two bins of 500): no inside correlation, NaN.
    flat = agreement(prior, np.linspace(0.025, 0.975, 1000), observed, bins=2, ceiling=False)
    assert np.all(flat.dq_predicted == 0) and np.isnan(flat.inside_pearson)


def test_importing_kernels_loads_no_tasks_torch_or_matplotlib():
    code = "import sys, physmis_edu.kernels; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"physmis_edu.tasks", "physmis_edu.plotting", "torch", "matplotlib"}
