"""sklearn-samn: long-tailed classifier heads with monotone weight norms.

``SAMNClassifier`` trains a linear head on frozen embeddings with PyTorch and
keeps the per-class weight norms monotone in class frequency through the Pool
Adjacent Violators Algorithm (SAMN, CVPR 2026).
"""

from . import datasets, metrics
from ._pava import monotone_projection
from ._persistence import load, save
from ._pipeline import ClassPriorPipeline, make_prior_pipeline
from ._samn import SAMNClassifier

__all__ = [
    "ClassPriorPipeline",
    "SAMNClassifier",
    "datasets",
    "load",
    "make_prior_pipeline",
    "metrics",
    "monotone_projection",
    "save",
]
__version__ = "0.1.0"
