"""The syllable-envelope task of Chapter 12: exact rate recovery on true data, octave errors when
the stress pattern is exaggerated, failures named, bad input named."""

import numpy as np
import pytest

from physmis_edu.metrics import drift_report
from physmis_edu.tasks import SyllableEnvelope


@pytest.fixture(scope="module")
def task():
    return SyllableEnvelope()


def test_true_envelopes_recover_their_rate(task):
    x, c = task.sample(4_000, rng=np.random.default_rng(0))
    rec = task.recover(x)
    assert rec.n_failed == 0
    err = rec.values - c
    assert np.quantile(np.abs(err), 0.999) < 0.06  # syllables per second, bins are 0.2 wide
    report = drift_report(rec.values, task.prior, rng=1)
    assert report.tv < report.null_tv99


def test_an_exaggerated_stress_pattern_halves_the_rate(task):
    # Past the stress the task draws (at most 0.5), the two-syllable peak wins: octave errors.
    loud = SyllableEnvelope(stress_max=0.95)
    c = np.full(2_000, 6.0)
    x = loud.generate(c, rng=np.random.default_rng(2))
    values = task.measure(x)
    halved = np.abs(values - 3.0) < 0.1
    assert 0.05 < halved.mean() < 0.9
    assert np.all(halved | (np.abs(values - 6.0) < 0.1))
    # octave_errors finds exactly those, without knowing the true rate.
    assert np.array_equal(task.octave_errors(x), halved)


def test_envelope_with_fixed_nuisances(task):
    phases = np.linspace(0.0, 1.0, 20, endpoint=False)
    calm = task.envelope(5.0, amplitude=1.0, phase=phases, stress=0.0)
    assert calm.shape == (20, task.length, 1) and calm.max() == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(task.measure(calm), 5.0, atol=0.05)
    assert not task.octave_errors(calm).any()
    heavy = task.envelope(5.0, amplitude=1.0, phase=phases, stress=0.8)
    assert task.octave_errors(heavy).all()
    with pytest.raises(ValueError, match="stress"):
        task.envelope(5.0, 1.0, 0.0, stress=1.0)
    with pytest.raises(ValueError, match="rate"):
        task.envelope(-5.0, 1.0, 0.0, stress=0.1)


def test_failures_are_named(task):
    x, _ = task.sample(3, rng=np.random.default_rng(3))
    x[0] = 0.0
    x[1, 5, 0] = np.nan
    reasons = list(task.recover(x).reasons)
    assert reasons[:2] == ["flat envelope", "nan in trajectory"] and reasons[2] == ""


def test_the_c_free_residual_sees_negative_envelopes(task):
    x, _ = task.sample(50, rng=np.random.default_rng(4))
    residual = task.c_free_residual()
    assert np.all(residual(x) == 0.0)
    assert np.all(residual(x - 0.05) > 0.05)


@pytest.mark.parametrize("kwargs, name", [
    (dict(duty=0.0), "duty"), (dict(stress_max=1.0), "stress_max"),
    (dict(threshold=0.0), "threshold"), (dict(length=40), "too short"),
    (dict(lo=-1.0, hi=2.0), "positive"), (dict(frame_rate=0.0), "frame_rate"),
])
def test_bad_input_is_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SyllableEnvelope(**kwargs)
