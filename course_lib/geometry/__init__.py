"""Local geometry of a classifier around an image (Aghdam, Heravi and Puig, VISAPP 2017).

Four measures of how a model's outputs change in a small ball around a
correctly classified sample, each taking the model first, then the samples:

- ``isotropy``: spread of the true-class score over random directions at each radius;
- ``symmetry``: the same over permutations of one random perturbation;
- ``topology``: Mantel correlation between the distances of perturbed copies
  before and after a layer (scikit-bio's ``mantel``);
- ``local_lipschitz``: normalised output distance against input distance.

Every measure is seeded per sample (``perturbations.sample_generator``), so the
same samples and seed give the same perturbations for every model, and each
makes one forward pass per sample and radius. Radii are L2 norms in pixel
units (images in [0, 1]); the perturbed copies are not clipped to [0, 1] (the
kit's choice, which the paper does not discuss): the measures describe the
function around x, not valid images. The paper studied ImageNet and GTSRB
ConvNets; the kit's chapter applies the measures to MNIST models in both profiles.
"""
from .lipschitz import LipschitzResult, MinMax, fit_minmax, local_lipschitz
from .perturbations import permuted_perturbations, sample_generator, sphere_perturbations
from .scores import ScoreSpread, confident_samples, isotropy, symmetry
from .topology import TopologyResult, layer_outputs, topology

__all__ = ["LipschitzResult", "MinMax", "ScoreSpread", "TopologyResult", "confident_samples", "fit_minmax",
           "isotropy", "layer_outputs", "local_lipschitz", "permuted_perturbations", "sample_generator",
           "sphere_perturbations", "symmetry", "topology"]
