"""The local-geometry chapter's settings per profile (the paper's values in ``full``).

Radii are L2 norms of the perturbation with pixels in [0, 1]. For scale: a
28x28 digit has an L2 norm near 9, and the L-infinity ball of eps 0.3 used in
chapters 5-6 reaches L2 norms up to 0.3 * 28 = 8.4.
"""
from __future__ import annotations

SETTINGS = {
    "quick": dict(
        samples=20,                 # confidently classified test digits (the paper: 300)
        directions=100,             # T perturbations per radius (the paper: 100)
        radii=(0.01, 0.1, 0.5, 1, 2, 4, 6, 8, 10, 12, 15, 20),
        topology_samples=8, topology_radii=(0.1, 1, 4, 10), copies=30, permutations=999,
        lipschitz_directions=20, normaliser_images=2000,
    ),
    "full": dict(
        samples=300,
        directions=100,
        radii=(0.01, 0.1, 0.5, *range(1, 21)),
        topology_samples=50, topology_radii=(0.1, 0.5, 1, 2, 4, 8, 12, 16, 20), copies=100,
        permutations=999, lipschitz_directions=100, normaliser_images=10000,
    ),
}


def chapter_settings(profile) -> dict:
    """The settings of ``profile`` (a name or a ``Profile``), a copy."""
    name = profile if isinstance(profile, str) else profile.name
    if name not in SETTINGS:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(SETTINGS)}")
    return dict(SETTINGS[name])
