"""The comparative compression study of Resmerita et al. (seed 002 §5): ``refcomp study``."""

from ..metrics import accuracy, compression_ratio, mean_kl, parameter_mse
from .registry import (Compressed, CompressedLayer, LayerView, get_method, method_names,
                       register_method)
from .report import write_report
from .run import check_study, pareto_front, run_study

__all__ = ["accuracy", "compression_ratio", "mean_kl", "parameter_mse", "Compressed",
           "CompressedLayer", "LayerView",
           "get_method", "method_names", "register_method", "write_report", "pareto_front",
           "run_study", "check_study"]
