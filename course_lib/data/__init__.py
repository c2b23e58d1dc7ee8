"""Datasets: the course's face datasets and their offline stand-in."""
from .faces import (CLASSES, DATASETS, MEAN, SPLITS, STD, TRANSFORM_TEST, TRANSFORM_TRAIN,
                    FacesDataset, crop_transforms, denormalize, faces_root, load_dataset)
from .synth_faces import generate_faces_dataset

__all__ = ["CLASSES", "DATASETS", "MEAN", "SPLITS", "STD", "TRANSFORM_TEST", "TRANSFORM_TRAIN",
           "FacesDataset", "crop_transforms", "denormalize", "faces_root", "generate_faces_dataset", "load_dataset"]
