"""Saliency maps behind one interface (``methods.py``), each leaving the model as it found it, and their sanity checks."""
from .class_model import class_model_visualisation
from .gradcam import get_grad_cam_visualization, grad_cam
from .gradient import compute_gradient_saliency_maps
from .iterative_mask import IterativeMask
from .localisation import box_from_map, box_iou, centre_box, localisation_error, max_box, saliency_metric
from .methods import GradCAMSaliency, SaliencyMethod, gradient_saliency
from .sanity import mass_inside, model_randomisation_check, planted_evidence_check, randomised_copy

__all__ = ["GradCAMSaliency", "IterativeMask", "SaliencyMethod", "box_from_map", "box_iou", "centre_box",
           "localisation_error", "max_box", "saliency_metric", "class_model_visualisation", "compute_gradient_saliency_maps", "get_grad_cam_visualization", "grad_cam",
           "gradient_saliency", "mass_inside", "model_randomisation_check", "planted_evidence_check",
           "randomised_copy"]
