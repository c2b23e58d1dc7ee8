"""Contextual fusion's model, objective, batch maker and metrics (chapter 10)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_lib.models.fusion import FusionClassifier, NetStream, SmallResNet
from course_lib.train import Batch, Engine
from course_lib.train.batches import AttackBatches, DictDataset, FrozenFeatures
from course_lib.train.metrics import HeadAccuracies
from course_lib.train.objectives import FusionHeads


def _fusion(classes: int = 3, seed: int = 0) -> FusionClassifier:
    torch.manual_seed(seed)
    return FusionClassifier(NetStream(SmallResNet(5, width=4)), NetStream(SmallResNet(4, width=4)), classes)


def _data(n: int = 48, seed: int = 0) -> DictDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = (0.3 * torch.rand(n, 3, 16, 16, generator=g) + 0.2 * y[:, None, None, None]).clamp(0, 1)
    return DictDataset({"x": x, "y": y, "scene": y.flip(0)})


def _stream_state(model: FusionClassifier) -> dict:
    """Every tensor of both streams, buffers (batch-norm statistics) included."""
    return {k: v.clone() for k, v in model.state_dict().items() if "stream" in k}


@pytest.mark.parametrize("batches", [FrozenFeatures(), AttackBatches(lambda m, x, y, generator=None: x.flip(3))])
def test_training_leaves_both_streams_bit_identical_and_moves_the_heads(batches):
    model = _fusion()
    streams, heads = _stream_state(model), model.joint.weight.clone()
    engine = Engine(model, torch.optim.SGD(model.parameters(), lr=0.1), FusionHeads(alpha=0.5), batches,
                    batch_size=16, device="cpu", progress=False, monitor=None, metrics=HeadAccuracies())
    engine.fit(_data(), 2, _data(24, 1))
    after = _stream_state(model)
    assert all(torch.equal(streams[k], after[k]) for k in streams), "a frozen stream changed"
    assert not torch.equal(heads, model.joint.weight)
    assert model.training and not model.object_stream.training and not model.scene_stream.training


def test_the_penalty_on_theta_fg_is_alpha_times_the_squared_norm_of_the_joint_heads_object_weights():
    model = _fusion()
    with torch.no_grad():
        model.joint.weight.copy_(torch.arange(model.joint.weight.numel(), dtype=torch.float32)
                                 .reshape(model.joint.weight.shape) / 100)
    batch = Batch(x=torch.rand(4, 3, 16, 16), y=torch.tensor([0, 1, 2, 0]))
    plain, _ = FusionHeads(0.0)(model, batch)
    penalised, metrics = FusionHeads(2.0)(model, batch)
    d = model.object_dim  # the joint head's first d columns read the object features
    by_hand = sum((row * (d + model.scene_dim) + col) ** 2 / 100 ** 2
                  for row in range(3) for col in range(d))
    assert metrics["penalty"] == pytest.approx(by_hand, rel=1e-5)
    assert (penalised - plain).item() == pytest.approx(2.0 * by_hand / 4, rel=1e-5)  # alpha / B: the paper's sum over B
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        FusionHeads(-1.0)


def test_the_heads_loss_is_the_sum_of_three_cross_entropies_and_precomputed_features_give_the_same():
    model = _fusion().eval()
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 2, 1, 0])
    loss, _ = FusionHeads()(model, Batch(x=x, y=y))
    objects, scenes = model.features(x)
    expected = (F.cross_entropy(model.fg(objects), y) + F.cross_entropy(model.bg(scenes), y)
                + F.cross_entropy(model.joint(torch.cat([objects, scenes], 1)), y))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    cached = Batch(x=torch.zeros_like(x), y=y, extras={"object_features": objects, "scene_features": scenes})
    assert FusionHeads()(model, cached)[0].item() == pytest.approx(expected.item(), rel=1e-6)


def test_frozen_features_adds_each_images_features_and_keeps_its_extras():
    model, data = _fusion(), _data(20)
    engine = Engine(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", channels_last=False,
                    progress=False)
    cached = FrozenFeatures().dataset(engine, data)
    model.eval()
    with torch.no_grad():
        objects, scenes = model.features(data.tensors["x"])
    assert torch.allclose(cached.tensors["object_features"], objects, atol=1e-6)
    assert torch.allclose(cached.tensors["scene_features"], scenes, atol=1e-6)
    assert torch.equal(cached.tensors["scene"], data.tensors["scene"])


def test_a_frozen_fit_measures_its_sets_on_features_computed_once_with_the_pixels_numbers():
    """The validation and test sets get their features once per fit, and each epoch's head accuracies are
    those of the model run on the pixels."""
    model, train, val, test = _fusion(), _data(48), _data(24, 1), _data(20, 2)
    calls = []
    features = model.features
    model.features = lambda x: calls.append(len(x)) or features(x)
    engine = Engine(model, torch.optim.Adam(model.parameters(), lr=0.01), FusionHeads(), FrozenFeatures(),
                    batch_size=16, device="cpu", progress=False, monitor=None, metrics=HeadAccuracies())
    history = engine.fit(train, 4, val, test)
    assert calls == [48, 24, 20], "the streams ran again after the fit's start"
    on_pixels = Engine(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", progress=False,
                       metrics=HeadAccuracies())
    measured = {name: on_pixels.measure(data) for name, data in (("val", val), ("test", test))}
    assert measured["val"]["acc_bg"] > 50 and measured["test"]["acc_fg"] != measured["test"]["acc_bg"]  # not chance
    for name, values in measured.items():
        for key, value in values.items():
            assert history[f"{name}_{key}"][-1] == pytest.approx(value, abs=1e-4), (name, key)


def test_each_head_is_a_pixel_classifier_and_head_accuracies_measures_each():
    model = _fusion().eval()
    x, y = torch.rand(5, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1])
    logits = model.all_logits(x)
    for name in ("fg", "bg", "joint"):
        assert torch.allclose(model.head(name)(x), logits[name])
    assert torch.equal(model(x), logits["joint"])
    values = HeadAccuracies()(model, Batch(x=x, y=y))
    for name in ("fg", "bg", "joint"):
        assert values[f"acc_{name}"] == pytest.approx(100 * (logits[name].argmax(1) == y).float().mean().item())
    assert values["acc"] == values["acc_joint"]
    assert values["acc_mean"] == pytest.approx(sum(values[f"acc_{h}"] for h in ("fg", "bg", "joint")) / 3)
    with pytest.raises(ValueError, match="unknown head 'object'"):
        model.head("object")


def test_the_streams_get_no_gradient_but_the_input_does():
    model = _fusion()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # attacks need it
    assert all(p.grad is None for name, p in model.named_parameters() if "stream" in name)
