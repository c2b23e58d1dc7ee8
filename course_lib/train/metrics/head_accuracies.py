"""The accuracy of each head of a multi-head model (contextual fusion's foreground, background and joint)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..objectives.base import batch_accuracy
from ..objectives.fusion_heads import stream_features
from .base import Metrics


@dataclass(frozen=True)
class HeadAccuracies(Metrics):
    """``acc_<head>`` (%) for every head of ``model.all_logits(x)``, their mean ``acc_mean``, and ``acc`` (joint).

    ``model.all_logits`` maps a batch of pixels to ``{head: (B, classes) logits}``; where the
    batch carries the streams' features (``batches.FrozenFeatures``), ``model.heads`` reads
    those instead. Monitor ``val_acc_mean`` to keep the epoch that is best for all heads together.
    """

    main: str = "joint"

    def __call__(self, model: nn.Module, batch) -> dict[str, float]:
        if "object_features" in batch.extras:
            logits = model.heads(*stream_features(model, batch))
        else:
            logits = model.all_logits(batch.x)
        values = {f"acc_{name}": batch_accuracy(out.float(), batch.y) for name, out in logits.items()}
        values["acc_mean"] = sum(values.values()) / len(values)
        values["acc"] = values[f"acc_{self.main}"]
        return values
