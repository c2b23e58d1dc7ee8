"""Saliency: gradient maps and Grad-CAM, each leaving the model as it found it, and their sanity checks."""
from .gradcam import get_grad_cam_visualization, grad_cam
from .gradient import compute_gradient_saliency_maps
from .sanity import (PlantedPatch, PlantedPatchNet, mass_inside, model_randomisation_check,
                     planted_evidence_check, planted_patch_images, randomised_copy,
                     train_planted_patch_model)

__all__ = ["PlantedPatch", "PlantedPatchNet", "compute_gradient_saliency_maps", "get_grad_cam_visualization",
           "grad_cam", "mass_inside", "model_randomisation_check", "planted_evidence_check",
           "planted_patch_images", "randomised_copy", "train_planted_patch_model"]
