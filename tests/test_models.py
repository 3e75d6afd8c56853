"""Tests of the generative models (Chapter 5): one interface, exact inpainting, drift on the logistic map.

Budgets are tiny so that the file runs in well under a minute on one core;
one torch thread, because the test machine's cores are shared.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from physmis_edu import metrics  # noqa: E402
from physmis_edu.models import (MODELS, VAE, DiffusionMLP, GenerativeModel,  # noqa: E402
                                NotFittedError, Transformer, default_config, load)
from physmis_edu.tasks import LogisticMap  # noqa: E402

torch.set_num_threads(1)

# The smallest network of each class: enough to test the interface.
TINY = {
    "DiffusionUNet": dict(dim=8, dim_mults=(1, 2), diffusion_steps=10),
    "DiffusionMLP": dict(hidden=32, layers=2, diffusion_steps=10),
    "Transformer": dict(width=16, layers=1, heads=2, bins=16),
    "VAE": dict(hidden=32, layers=1, latent=2),
}
INPAINTERS = ["DiffusionUNet", "DiffusionMLP", "Transformer"]


def tiny(name, **overrides):
    return MODELS[name](**{**TINY[name], "train_steps": 5, "batch_size": 16, "progress": False,
                           "device": "cpu", **overrides})


def toy_data(n=64, length=8, seed=0):
    """Two channels on very different scales, so that per-channel normalisation matters."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.stack([1000.0 + 5.0 * np.sin(2 * np.pi * t + phase), -3.0 + 0.01 * np.cos(2 * np.pi * t + phase)], axis=-1)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def logistic():
    task = LogisticMap()
    x, c = task.sample(2000, np.random.default_rng(0))
    return task, x, c


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_dtypes_and_save_load(name, tmp_path):
    x = toy_data()
    model = tiny(name).fit(x)
    assert model is not None and model.shape_ == (8, 2)
    assert len(model.loss_history) == 5 and all(np.isfinite(model.loss_history))
    out = model.sample(7, rng=3)
    assert out.shape == (7, 8, 2) and out.dtype == np.float32 and np.isfinite(out).all()
    # Same seed: same samples; the loaded copy reproduces them exactly on the CPU.
    np.testing.assert_array_equal(out, model.sample(7, rng=3))
    np.testing.assert_array_equal(out, tiny(name).fit(x).sample(7, rng=3))
    path = tmp_path / "model.pt"
    model.save(path)
    again = type(model).load(path, device="cpu")
    assert again.get_config() == model.get_config()
    np.testing.assert_array_equal(again.sample(7, rng=3), out)
    np.testing.assert_array_equal(load(path).sample(7, rng=3), out)
    assert again.loss_history == model.loss_history
    other = VAE if name != "VAE" else DiffusionMLP
    with pytest.raises(ValueError, match="not a"):
        other.load(path)


def test_normalisation_round_trips():
    x = toy_data()
    model = tiny("Transformer").fit(x)
    z = model.normalise(x)
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=(0, 1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(model.denormalise(z), x, rtol=1e-12, atol=1e-9)
    # Bin centres lie inside each channel's training range: only true if output is de-normalised per channel.
    out = model.sample(50, rng=0)
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    assert (out >= lo - 1e-3 * (hi - lo)).all() and (out <= hi + 1e-3 * (hi - lo)).all()


def test_constant_channel_is_kept():
    x = toy_data()
    x[:, :, 1] = 2.5
    model = tiny("DiffusionMLP").fit(x)
    assert model.x_std_[1] == 1.0
    assert np.isfinite(model.sample(4, rng=0)).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_decreases_on_tiny_dataset(name, logistic):
    _, x, _ = logistic
    model = tiny(name, train_steps=150, batch_size=64, lr=3e-3).fit(x[:256, :8])
    first, last = np.mean(model.loss_history[:10]), np.mean(model.loss_history[-10:])
    # Every loss here is per trajectory entry in normalised units, so one absolute margin fits all.
    assert last < first - 0.1, (first, last)


@pytest.mark.parametrize("name", INPAINTERS)
def test_inpainted_values_are_exact(name):
    x = toy_data()
    model = tiny(name).fit(x)
    n = 6
    mask = np.zeros((n, 8, 2), dtype=bool)
    mask[:, 0, :] = True                    # start, both channels
    mask[:, -1, 0] = True                   # goal, first channel only
    values = np.full((n, 8, 2), np.nan)
    values[:, 0, 0] = 1000.0 + np.linspace(-4, 4, n)
    values[:, 0, 1] = -3.0 + 0.001 * np.arange(n)
    values[:, -1, 0] = 1001.2345
    out = model.sample(n, inpaint=(mask, values), rng=1)
    np.testing.assert_array_equal(out[mask], values[mask].astype(np.float32))
    assert np.isfinite(out).all()
    # A mask shared by all samples broadcasts.
    shared = model.sample(3, inpaint=(mask[0], values[0]), rng=1)
    np.testing.assert_array_equal(shared[:, mask[0]], np.broadcast_to(values[0][mask[0]].astype(np.float32), (3, 3)))


def test_inpaint_refused_where_unsupported_or_malformed():
    model = tiny("VAE").fit(toy_data())
    mask = np.zeros((8, 2), dtype=bool)
    with pytest.raises(ValueError, match="does not support inpaint"):
        model.sample(2, inpaint=(mask, np.zeros((8, 2))))
    diff = tiny("DiffusionMLP").fit(toy_data())
    with pytest.raises(ValueError, match="boolean"):
        diff.sample(2, inpaint=(mask.astype(int), np.zeros((8, 2))))
    with pytest.raises(ValueError, match="broadcast"):
        diff.sample(2, inpaint=(np.ones((3, 2), dtype=bool), np.zeros((3, 2))))
    with pytest.raises(ValueError, match="finite"):
        diff.sample(2, inpaint=(np.ones((8, 2), dtype=bool), np.full((8, 2), np.nan)))
    with pytest.raises(ValueError, match="pair"):
        diff.sample(2, inpaint=mask)


@pytest.mark.parametrize("name", list(MODELS))
def test_conditional_variant(name, tmp_path):
    x = toy_data()
    cond = np.linspace(3.6, 4.0, len(x))
    model = tiny(name).fit(x, cond=cond)
    assert model.conditional_
    out = model.sample(5, cond=np.full(5, 3.8), rng=0)
    assert out.shape == (5, 8, 2) and np.isfinite(out).all()
    np.testing.assert_array_equal(model.sample(5, cond=3.8, rng=0), out)   # a scalar broadcasts
    assert not np.array_equal(model.sample(5, cond=3.6, rng=0), out)        # and cond matters
    model.save(tmp_path / "c.pt")
    np.testing.assert_array_equal(load(tmp_path / "c.pt").sample(5, cond=3.8, rng=0), out)
    with pytest.raises(ValueError, match="shape"):
        model.sample(5, cond=np.ones(4))
    with pytest.raises(ValueError, match="pass cond"):
        model.sample(5)
    with pytest.raises(ValueError, match="shape"):
        tiny(name).fit(x, cond=np.ones(len(x) + 1))
    with pytest.raises(ValueError, match="NaN"):
        tiny(name).fit(x, cond=np.full(len(x), np.nan))
    with pytest.raises(ValueError, match="unconditional"):
        tiny(name).fit(x).sample(2, cond=np.ones(2))


# Quarter-size budgets of the ci profile: still far from the prior on the chaotic logistic map.
DRIFT_BUDGETS = {
    "DiffusionUNet": dict(dim=8, dim_mults=(1, 2), diffusion_steps=20, train_steps=100, batch_size=128, lr=3e-3),
    "DiffusionMLP": dict(hidden=128, layers=2, diffusion_steps=20, train_steps=300, batch_size=128, lr=2e-3),
    "Transformer": dict(width=32, layers=1, heads=2, bins=32, train_steps=150, batch_size=64, lr=3e-3),
    "VAE": dict(hidden=128, layers=2, latent=8, train_steps=300, batch_size=128, lr=2e-3),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_recovered_distribution_drifts_above_null(name, logistic):
    task, x, _ = logistic
    model = MODELS[name](**DRIFT_BUDGETS[name], progress=False, device="cpu").fit(x)
    report = metrics.drift_report(task.measure(model.sample(1000, rng=0)), task.prior,
                                  n_null=300, n_boot=20, rng=0)
    assert report.significant and report.tv > 2 * report.null_tv99, str(report)


def test_bad_input_raises_clear_errors():
    model = tiny("DiffusionMLP")
    with pytest.raises(NotFittedError, match="not fitted"):
        model.sample(3)
    with pytest.raises(ValueError, match="not fitted"):     # NotFittedError is a ValueError ...
        model.save("never.pt")
    with pytest.raises(RuntimeError):                       # ... and a RuntimeError
        model.sample(3)
    with pytest.raises(ValueError, match="3 dimensions"):
        model.fit(np.zeros((10, 8)))
    with pytest.raises(ValueError, match="NaN"):
        bad = toy_data()
        bad[0, 0, 0] = np.nan
        model.fit(bad)
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 8, 2)))
    model.fit(toy_data())
    for n in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n must"):
            model.sample(n)
    with pytest.raises(ValueError, match="device"):
        tiny("VAE", device="tpu")
    for bad in (dict(train_steps=0), dict(lr=-1.0), dict(seed=-1), dict(predict="v"), dict(diffusion_steps=1)):
        with pytest.raises(ValueError):
            tiny("DiffusionMLP", **bad)
    with pytest.raises(ValueError, match="heads"):
        tiny("Transformer", width=10, heads=4)
    with pytest.raises(ValueError, match="dim_mults"):
        tiny("DiffusionUNet", dim_mults=())


def test_profiles_and_registry():
    for name, cls in MODELS.items():
        sizes = [cls.for_profile(p, progress=False).get_config() for p in ("ci", "cpu", "gpu")]
        assert sizes[0]["train_steps"] <= sizes[1]["train_steps"] <= sizes[2]["train_steps"]
        assert default_config(name, "ci")["train_steps"] == sizes[0]["train_steps"]
        assert issubclass(cls, GenerativeModel)
    assert Transformer.for_profile("ci", bins=7).bins == 7
    with pytest.raises(ValueError, match="profile"):
        default_config("VAE", "huge")
    with pytest.raises(ValueError, match="model_name"):
        default_config("GAN", "ci")


def test_progress_bar_can_be_silenced(capsys):
    tiny("VAE", progress=False).fit(toy_data())
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_unet_handles_lengths_not_divisible_by_its_levels():
    x = toy_data(length=7)
    out = tiny("DiffusionUNet", dim_mults=(1, 2, 2)).fit(x).sample(3, rng=0)
    assert out.shape == (3, 7, 2) and np.isfinite(out).all()


# -- checkpoints: atomic writes, checksums, one clear error per bad file (issue 12, items 20, 22) --

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    model = tiny("DiffusionMLP").fit(toy_data())
    path = folder / "good.pt"
    model.save(path)
    return model, path


def _bad_files(good, folder):
    import io
    import zipfile

    import torch

    raw = good.read_bytes()
    files = {
        "random bytes": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
    }
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    files[".npy"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    files["wrong type"] = buf.getvalue()
    # Edited shapes: the same file with one tensor replaced by a tensor of another shape.
    blob = torch.load(good, weights_only=True)
    name = next(iter(blob["state_dict"]))
    blob["state_dict"][name] = torch.zeros(3, 3)
    buf = io.BytesIO()
    torch.save(blob, buf)
    files["edited shape"] = buf.getvalue()
    blob["checksum"] = "0" * 64  # a forged checksum does not help either
    buf = io.BytesIO()
    torch.save(blob, buf)
    files["edited shape, forged checksum"] = buf.getvalue()
    # One flipped byte inside a tensor's storage (the archive stays readable).
    with zipfile.ZipFile(good) as z:
        entries = {i.filename: z.read(i.filename) for i in z.infolist()}
    data = sorted(n for n in entries if "/data/" in n and not n.endswith("/data.pkl"))
    flipped = bytearray(entries[data[0]])
    flipped[0] ^= 0x01
    entries[data[0]] = bytes(flipped)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n, content in entries.items():
            z.writestr(n, content)
    files["flipped byte"] = buf.getvalue()
    paths = {}
    for kind, content in files.items():
        p = folder / f"{kind.replace(' ', '_').replace(',', '')}.pt"
        p.write_bytes(content)
        paths[kind] = p
    return paths


def test_every_bad_checkpoint_gives_one_clear_error(saved, tmp_path):
    model, good = saved
    for kind, path in _bad_files(good, tmp_path).items():
        with pytest.raises(ValueError) as info:
            load(path)
        message = str(info.value)
        assert str(path) in message, (kind, message)
        assert "weights_only=False" not in message and info.value.__cause__ is None, (kind, message)
        assert info.value.__suppress_context__, kind
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load(tmp_path / "missing.pt")


def test_flipped_byte_is_caught_by_the_checksum(saved, tmp_path):
    _, good = saved
    path = _bad_files(good, tmp_path)["flipped byte"]
    with pytest.raises(ValueError, match="checksum"):
        load(path)


def test_interrupted_save_keeps_the_previous_checkpoint(saved, tmp_path, monkeypatch):
    import os

    import torch

    model, good = saved
    path = tmp_path / "model.pt"
    path.write_bytes(good.read_bytes())

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good.read_bytes()
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind
    np.testing.assert_array_equal(load(path).sample(3, rng=0), model.sample(3, rng=0))


def test_a_planner_completes_paths_between_pinned_ends_and_refuses_to_sample_without_them():
    # Straight lines between random ends: a planner trained with clean ends (plan_endpoints)
    # must join the pinned ends; one trained without them is not asked to.
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (2, 2000, 1, 2))
    line = (a + (b - a) * np.linspace(0, 1, 8)[None, :, None]).astype(np.float32)
    model = DiffusionMLP(hidden=128, layers=2, train_steps=600, batch_size=128, lr=3e-3,
                         diffusion_steps=20, seed=0, progress=False, plan_endpoints=True)
    model.fit(line)
    ends = np.zeros((200, 8, 2), dtype=bool)
    ends[:, [0, -1]] = True
    target = line[:200]
    out = model.sample(200, inpaint=(ends, target), rng=1)
    np.testing.assert_array_equal(out[ends], target[ends])
    # The steps next to the pins are about one eighth of the span, as on the lines themselves.
    first = np.linalg.norm(out[:, 1] - out[:, 0], axis=1)
    true_first = np.linalg.norm(target[:, 1] - target[:, 0], axis=1)
    assert np.median(np.abs(first - true_first)) < 0.1
    with pytest.raises(ValueError, match="plan_endpoints"):
        model.sample(5, rng=0)
    with pytest.raises(ValueError, match="plan_endpoints must be True or False"):
        DiffusionMLP(plan_endpoints="yes")
