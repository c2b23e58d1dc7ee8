"""Soft scores and ROC AUC."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib.evaluation import get_soft_scores_and_true_labels, roc_auc


def _data():
    torch.manual_seed(0)
    y = torch.arange(40) % 2
    return TensorDataset(torch.randn(40, 4) + y[:, None].float(), y)


@pytest.mark.parametrize("training", [True, False])
def test_soft_scores_are_softmax_columns_in_dataset_order(training):
    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))
    model.train(training)
    real, fake, labels = get_soft_scores_and_true_labels(_data(), model, batch_size=7)
    assert real.shape == fake.shape == labels.shape == (40,)
    np.testing.assert_allclose(real + fake, 1, atol=1e-6)
    assert labels.tolist() == (torch.arange(40) % 2).tolist()
    with torch.no_grad():
        expected = torch.softmax(model[0](_data().tensors[0]), 1)[:, 1].numpy()
    np.testing.assert_allclose(fake, expected, atol=1e-6)  # eval mode: dropout off
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())


def test_real_score_auc_is_one_minus_fake_score_auc():
    real, fake, labels = get_soft_scores_and_true_labels(_data(), nn.Linear(4, 2))
    assert roc_auc(real, labels) == pytest.approx(1 - roc_auc(fake, labels))
    assert roc_auc(labels.astype(float), labels) == 1.0


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([0.1, 0.9]), np.array([1, 1]))
