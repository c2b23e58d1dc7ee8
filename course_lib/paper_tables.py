"""Tables rebuilt the way a paper built them: which model fills which cell.

Defendr's Table 2 gives one row for its denoiser, but each of the row's cells
comes from a different denoiser: the one trained on that column's attack and
budget (the row is the diagonal of its Table 4). Its Table 4 then tests each
denoiser at the budget it was trained on. These helpers fill such rows and say
which cell a cited number belongs beside.
"""
from __future__ import annotations

import torch
from torch import nn

from .evaluation import accuracy


def diagonal_row(models: dict[str, nn.Module], attacked: dict[str, torch.Tensor],
                 y: torch.Tensor) -> dict[str, float]:
    """{column: accuracy in %}, each column measured on the model trained for that column.

    Args:
        models: {column: model trained on that column's attack and budget},
            e.g. {"FGSM 0.12": denoiser trained on FGSM examples at eps 0.12}.
        attacked: {column: (B, C, H, W) adversarial images of that attack and budget}.
        y: (B,) true labels.
    """
    missing = [column for column in attacked if column not in models]
    if missing:
        raise KeyError(f"no model trained for column(s) {', '.join(missing)}: a diagonal row needs one "
                       f"model per column (models has {', '.join(models) or 'none'})")
    return {column: accuracy(models[column], x_adv, y) for column, x_adv in attacked.items()}


def own_budget(row: dict[str, float], trained_on: str, attacks=("FGSM", "PGD")) -> dict[str, float]:
    """{attack: accuracy} of one Table 4 row at the budget its model was trained on.

    ``trained_on`` names the row as "<attack> <eps>" (e.g. "FGSM 0.3"); ``row``
    has a column "<attack> <eps>" for each attack at that eps.
    """
    try:
        _, eps = trained_on.split()
        float(eps)
    except ValueError as err:
        raise ValueError(f"a row name must read '<attack> <eps>', e.g. 'FGSM 0.3', got {trained_on!r}") from err
    missing = [f"{attack} {eps}" for attack in attacks if f"{attack} {eps}" not in row]
    if missing:
        raise KeyError(f"row {trained_on!r} has no column {', '.join(missing)}; it has {', '.join(row)}")
    return {attack: row[f"{attack} {eps}"] for attack in attacks}
