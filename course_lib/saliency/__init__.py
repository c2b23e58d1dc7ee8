"""Saliency maps behind one interface (``methods.py``), each leaving the model as it found it, and their sanity checks."""
from .class_model import class_model_visualisation
from .gradcam import get_grad_cam_visualization, grad_cam
from .gradient import compute_gradient_saliency_maps
from .methods import GradCAMSaliency, gradient_saliency
from .sanity import mass_inside, model_randomisation_check, planted_evidence_check, randomised_copy

__all__ = ["GradCAMSaliency", "class_model_visualisation", "compute_gradient_saliency_maps", "get_grad_cam_visualization", "grad_cam",
           "gradient_saliency", "mass_inside", "model_randomisation_check", "planted_evidence_check",
           "randomised_copy"]
