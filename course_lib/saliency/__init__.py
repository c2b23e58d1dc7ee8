"""Saliency: gradient maps and Grad-CAM, each leaving the model as it found it."""
from .gradcam import get_grad_cam_visualization, grad_cam
from .gradient import compute_gradient_saliency_maps

__all__ = ["compute_gradient_saliency_maps", "get_grad_cam_visualization", "grad_cam"]
