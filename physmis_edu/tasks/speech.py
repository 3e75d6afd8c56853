"""A vignette beyond physics: the speaking rate of a syllable envelope (introduced in Chapter 12).

The source's abstract reports the failure for speaking rate in speech synthesis. This task is a
synthetic stand-in, built for the book: the amplitude envelope of a run of syllables, whose
control is the rate in syllables per second, recovered by autocorrelation as a rate tracker
would. It is not a model of speech; it keeps the one property that matters here, a recovery
that can be fooled by a pattern that repeats every *two* syllables (the octave error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_positive, check_positive_int, check_range
from .base import Recovery, Task


def _negative_residual(x) -> np.ndarray:
    """RMS of the negative part of each envelope relative to its RMS: zero for every true
    envelope, whatever its rate (an envelope is a magnitude). A weak check: it sees only one
    way a generated envelope can be wrong."""
    e = np.asarray(x, dtype=np.float64)[:, :, 0]
    rms = np.sqrt(np.mean(e**2, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.mean(np.minimum(e, 0.0) ** 2, axis=1)) / rms


@dataclass
class SyllableEnvelope(Task):
    """Envelope of a run of syllables with control ``rate`` (syllables per second) (Chapter 12).

    A trajectory is ``length`` frames at ``frame_rate`` frames per second of

    ``e(t) = A sum_k s_k bump((t - (k + phase) / rate) * rate / duty)``,

    a raised-cosine ``bump`` on ``[-1/2, 1/2]`` per syllable (each lasting ``duty`` of a period).
    Nuisance: the amplitude ``A ~ U(0.5, 1)``, the phase ``phase ~ U(0, 1)`` and a stress
    pattern: every other syllable is weaker, ``s_k = 1 - stress`` for odd ``k``,
    ``stress ~ U(0, stress_max)``.

    Recovery, as a rate tracker does it: the autocorrelation ``a(tau)`` of the mean-removed
    envelope, normalised by ``a(0)`` and by the overlap ``(L - tau) / L``, over the lags of rates
    ``lo / 2`` to ``hi * 1.5``; the period is the *shortest* lag at a local maximum whose value
    is at least ``threshold`` times the largest one, refined by a parabola through the three
    lags around it, and the rate is ``frame_rate / period``. A weak stress leaves the
    one-syllable peak highest. A pattern that repeats every two syllables raises the peak at
    twice the period; once the one-syllable peak falls below ``threshold`` of it, the tracker
    reports half the rate, the octave error. Failures: ``"flat envelope"`` and
    ``"no periodicity in the lag range"``.
    """

    lo: float = 3.0
    hi: float = 7.0
    length: int = 128
    frame_rate: float = 100.0
    duty: float = 0.6
    stress_max: float = 0.5
    threshold: float = 0.5

    name = "syllable envelope"
    control_name = "rate"
    units = "syllables/s"
    description = ("Amplitude envelope of a run of syllables; nuisance: loudness, phase and a "
                   "stress pattern that weakens every other syllable.")
    channels = 1

    def __post_init__(self):
        super().__post_init__()
        if self.lo <= 0:
            raise ValueError(f"rate range must be positive; got lo={self.lo}")
        self.length = check_positive_int(self.length, "length (frames)", minimum=8)
        self.frame_rate = check_positive(self.frame_rate, "frame_rate")
        if not 0.0 < self.duty <= 1.0:
            raise ValueError(f"duty must lie in (0, 1]; got {self.duty}")
        if not 0.0 <= self.stress_max < 1.0:
            raise ValueError(f"stress_max must lie in [0, 1); got {self.stress_max}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1]; got {self.threshold}")
        self._lags = self._lag_range()

    def _lag_range(self) -> np.ndarray:
        shortest = max(2, int(np.floor(self.frame_rate / (1.5 * self.hi))))
        longest = int(np.ceil(self.frame_rate / (0.5 * self.lo)))
        if longest + 2 > self.length - 4:
            raise ValueError(f"length={self.length} frames is too short to see two periods of "
                             f"the slowest rate {self.lo / 2:g}/s the tracker searches; use at "
                             f"least {longest + 6} frames")
        check_range(shortest, longest, "lag range")
        return np.arange(shortest - 1, longest + 2)

    def envelope(self, rate, amplitude, phase, stress) -> np.ndarray:
        """Envelopes for given rates and nuisances (arrays broadcast to one shape ``(n,)``):
        float32 ``(n, L, 1)``. ``stress`` may exceed ``stress_max`` (up to, not including, 1),
        to show what the tracker does with an exaggerated stress pattern (Chapter 12)."""
        rate, amplitude, phase, stress = (np.atleast_1d(np.asarray(v, dtype=np.float64))
                                          for v in (rate, amplitude, phase, stress))
        rate, amplitude, phase, stress = np.broadcast_arrays(rate, amplitude, phase, stress)
        if not (np.all(rate > 0) and np.all(np.isfinite(rate))):
            raise ValueError("rate must be finite and positive")
        if not (np.all(stress >= 0) and np.all(stress < 1)):
            raise ValueError("stress must lie in [0, 1)")
        t = np.arange(self.length) / self.frame_rate
        cycles = t[None, :] * rate[:, None] - phase[:, None]  # syllable k at cycles = k
        k = np.round(cycles)
        offset = (cycles - k) / self.duty  # in units of a syllable's duration
        bump = np.where(np.abs(offset) <= 0.5, 0.5 * (1.0 + np.cos(2.0 * np.pi * offset)), 0.0)
        weak = k.astype(np.int64) % 2 == 1
        scale = np.where(weak, 1.0 - stress[:, None], 1.0)
        x = amplitude[:, None] * scale * bump
        return x.astype(np.float32)[:, :, None]

    def generate(self, c, rng=None) -> np.ndarray:
        rate = self.check_c(c)
        rng = as_rng(rng)
        n = rate.size
        amplitude = rng.uniform(0.5, 1.0, n)
        phase = rng.uniform(0.0, 1.0, n)
        stress = rng.uniform(0.0, self.stress_max, n)
        return self.envelope(rate, amplitude, phase, stress)

    def octave_errors(self, x) -> np.ndarray:
        """Per envelope: did the tracker pass over a periodicity at half its period (Chapter 12)?
        True where the autocorrelation has a local maximum within 1.5 lags of half the period
        the tracker picked: a one-syllable rhythm that the stress pattern made lose to the
        two-syllable one. ``False`` where recovery failed."""
        period = self.frame_rate / self.measure(x)
        acf = self.autocorrelation(np.nan_to_num(self._check_x(x)))
        lags = np.arange(1, self.length - 1)
        is_peak = (acf[:, 1:-1] > acf[:, :-2]) & (acf[:, 1:-1] >= acf[:, 2:])
        with np.errstate(invalid="ignore"):
            near = np.abs(lags[None, :] - period[:, None] / 2.0) <= 1.5
        return (is_peak & near).any(axis=1) & np.isfinite(period)

    def c_free_residual(self):
        """The envelope's negative part relative to its RMS (see ``_negative_residual``)."""
        return _negative_residual

    def autocorrelation(self, x) -> np.ndarray:
        """Normalised autocorrelation at lags ``0 .. L-1`` of each envelope, ``(n, L)``."""
        e = self._check_x(x)[:, :, 0].astype(np.float64)
        e = e - e.mean(axis=1, keepdims=True)
        size = 2 * self.length
        spectrum = np.fft.rfft(e, n=size, axis=1)
        acf = np.fft.irfft(np.abs(spectrum) ** 2, n=size, axis=1)[:, :self.length]
        with np.errstate(invalid="ignore", divide="ignore"):
            acf = acf / acf[:, :1] * self.length / (self.length - np.arange(self.length))
        return acf

    def recover(self, x) -> Recovery:
        e = self._check_x(x)[:, :, 0]
        nan = np.isnan(e).any(axis=1)
        flat = np.nanstd(np.where(nan[:, None], 0.0, e), axis=1) < 1e-9
        acf = self.autocorrelation(np.where(nan[:, None, None] | flat[:, None, None], 0.0,
                                            np.nan_to_num(x)))
        lags = self._lags
        window = acf[:, lags]
        inner = window[:, 1:-1]
        is_peak = (inner > window[:, :-2]) & (inner >= window[:, 2:])
        best = np.where(is_peak, inner, -np.inf).max(axis=1)
        chosen = is_peak & (inner >= self.threshold * best[:, None]) & (best[:, None] > 0)
        none = ~chosen.any(axis=1)
        first = np.argmax(chosen, axis=1)  # shortest qualifying lag
        rows = np.arange(e.shape[0])
        y0, y1, y2 = window[rows, first], window[rows, first + 1], window[rows, first + 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            curvature = y0 - 2.0 * y1 + y2
            shift = np.where(curvature < 0, 0.5 * (y0 - y2) / curvature, 0.0)
            period = lags[first + 1] + shift  # within half a lag: y1 is a local maximum
            rate = self.frame_rate / period
        return Recovery.from_values(rate, {
            "nan in trajectory": nan,
            "flat envelope": flat,
            "no periodicity in the lag range": none,
        })
