"""Each chapter's own settings per profile: the one place a notebook reads its sizes from.

What a zoo model trains with lives in its recipe (``models/*.py``), and what
every chapter shares (data sources, the number of digits attacked in the eps
sweeps) in ``config.Profile``. What remains, the sizes that one notebook alone
uses (digits measured, PGD steps, perturbation radii), lives here, so that a
notebook asks ``chapter_settings("adaptive_attacks", PROFILE)`` and never types
``N = 100 if PROFILE == "quick" else 1000``. ``quick`` values keep each notebook
under 90 s on 2 CPU cores; ``full`` values are the papers' where the chapter follows
its paper's setting (chapter 9's MNIST models are an adaptation, not its paper's setting).
"""
from __future__ import annotations

SETTINGS: dict[str, dict[str, dict]] = {
    # Chapter 6: the short training run the notebook shows before it loads the zoo's model, the test
    # digits AutoAttack runs on (the zoo's models store theirs: autoattack_eval_size in their recipes),
    # and the queries of the checklist's Square attack (at least 1,000 in quick; AutoAttack's 5,000 in full).
    "adversarial_training": {
        "quick": dict(short_run_epochs=3, autoattack_digits=50, square_queries=1000),
        "full": dict(short_run_epochs=10, autoattack_digits=1000, square_queries=5000),
    },
    # Chapter 7: test digits measured in the denoiser's tables.
    "guided_denoiser": {
        "quick": dict(digits=100),
        "full": dict(digits=1000),
    },
    # Chapter 8: digits attacked per model and eps, PGD's steps (of 2.5 eps / steps each), the first
    # digits AutoAttack runs on, the checklist's Square queries (AutoAttack's 5,000 in full), and the
    # calls of a randomised defence that score each attacked digit (its expected accuracy over draws).
    "adaptive_attacks": {
        "quick": dict(digits=60, pgd_steps=20, autoattack_digits=30, square_queries=1000, score_draws=10),
        "full": dict(digits=1000, pgd_steps=100, autoattack_digits=1000, square_queries=5000, score_draws=20),
    },
    # Chapter 9, on MNIST in both profiles (the paper studied ImageNet and GTSRB ConvNets, so full
    # takes the paper's counts of samples and directions, not its setting). Radii are L2 norms of the perturbation with
    # pixels in [0, 1]; for scale, a 28x28 digit has an L2 norm near 9, and the L-infinity
    # ball of eps 0.3 of chapters 5-6 reaches L2 norms up to 0.3 * 28 = 8.4.
    "local_geometry": {
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
    },
    # Chapter 10: Akumalla et al.'s blur levels (sigma in pixels at 224 px, scaled to the image size),
    # FGSM budgets in pixel units, and how many test images the adaptive attacks, AutoAttack (the first
    # of the adaptive images), the checklist and the CIFAR-10 section (full: its whole test set) take.
    "contextual_fusion": {
        "quick": dict(
            blur_sigmas_224=(0, 5, 10, 20, 30, 45), pca_sigma_224=5, dial_sigma_224=10,
            fgsm_eps=(0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1), dial_eps=0.03, checklist_eps=0.01,
            dial_images=300, adaptive_images=120, autoattack_images=40, pgd_steps=10, checklist_images=48,
            spsa_images=8, spsa_samples=32, cifar10_images=200,
        ),
        "full": dict(
            blur_sigmas_224=(0, 5, 10, 15, 20, 25, 30, 35, 40, 45), pca_sigma_224=5, dial_sigma_224=10,
            fgsm_eps=(0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1), dial_eps=0.03, checklist_eps=0.01,
            dial_images=2000, adaptive_images=1000, autoattack_images=1000, pgd_steps=40, checklist_images=500,
            spsa_images=64, spsa_samples=128, cifar10_images=10000,
        ),
    },
    # Chapter 11: test scenes in the saliency table (every method on the same images), Adam steps of each
    # iterative mask (full 300: where masks stopped changing in the measurements the chapter started from;
    # quick 150: on the table's 40 scenes, 150 and 300 steps gave the paper objective's masks the same
    # area, 0.57, and metric, 0.35 and 0.36, and the code objective's 0.09 and 0.07 with areas 0.25 and
    # 0.22, in 21 s against 39),
    # the iterative mask's side before upsampling (quick 16: 4 px per cell of a 64 px scene; full 28, the
    # paper's, at 224 px), test scenes for the true-vs-wrong-class mask areas (full: its whole test set),
    # planted-patch images for the sanity check.
    "realtime_saliency": {
        "quick": dict(table_images=40, iterative_steps=150, iterative_mask_size=16, area_images=400,
                      planted_images=64, photo_steps=120),
        "full": dict(table_images=1000, iterative_steps=300, iterative_mask_size=28, area_images=2000,
                     planted_images=256, photo_steps=300),
    },
}


def chapter_settings(chapter: str, profile) -> dict:
    """The settings of ``chapter`` in ``profile`` (a name or a ``config.Profile``), a copy."""
    if chapter not in SETTINGS:
        raise ValueError(f"no settings for chapter {chapter!r}; chapters with settings: {', '.join(SETTINGS)}")
    name = profile if isinstance(profile, str) else profile.name
    if name not in SETTINGS[chapter]:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(SETTINGS[chapter])}")
    return dict(SETTINGS[chapter][name])
