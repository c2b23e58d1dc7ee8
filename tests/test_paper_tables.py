"""Rows of the papers' tables filled as the papers filled them: each cell from the right model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.paper_tables import diagonal_row, own_budget

COLUMNS = ["FGSM 0.12", "FGSM 0.3", "PGD 0.12", "PGD 0.3"]


class KnowsOneSet(nn.Module):
    """Right (label 0) only on images filled with its own value, wrong (label 1) elsewhere."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        own = (x.flatten(1).mean(1) - self.value).abs() < 1e-6
        return torch.stack([own.float(), (~own).float()], dim=1)


def test_each_column_of_a_diagonal_row_uses_the_model_trained_for_it():
    values = {column: (i + 1) / 10 for i, column in enumerate(COLUMNS)}
    attacked = {column: torch.full((5, 1, 4, 4), value) for column, value in values.items()}
    models = {column: KnowsOneSet(value) for column, value in values.items()}
    y = torch.zeros(5, dtype=torch.long)
    assert diagonal_row(models, attacked, y) == {column: 100.0 for column in COLUMNS}
    # one model for every column (what chapter 7 did before): only its own column is right
    one_for_all = {column: models["FGSM 0.3"] for column in COLUMNS}
    assert diagonal_row(one_for_all, attacked, y) == {"FGSM 0.12": 0.0, "FGSM 0.3": 100.0, "PGD 0.12": 0.0,
                                                      "PGD 0.3": 0.0}
    with pytest.raises(KeyError, match="PGD 0.3"):
        diagonal_row({c: m for c, m in models.items() if c != "PGD 0.3"}, attacked, y)


def test_a_table4_row_is_read_at_its_own_training_budget():
    row = {"FGSM 0.12": 1.0, "PGD 0.12": 2.0, "FGSM 0.3": 3.0, "PGD 0.3": 4.0}
    assert own_budget(row, "FGSM 0.3") == {"FGSM": 3.0, "PGD": 4.0}
    assert own_budget(row, "PGD 0.12") == {"FGSM": 1.0, "PGD": 2.0}
    with pytest.raises(ValueError, match="<attack> <eps>"):
        own_budget(row, "FGSM")
    with pytest.raises(KeyError, match="PGD 0.06"):
        own_budget(row, "FGSM 0.06")
