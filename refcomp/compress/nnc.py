"""NNC-style compression of a whole model (MPEG NNC core as NNCodec 2.1.3 runs it).

Every float32 weight of every layer becomes an :class:`refcomp.quantize.NNCCoded`:
weights of two or more dimensions at ``qp``, the others (biases, normalisation
vectors) at ``nonweight_qp``, each quantized (dependent quantization by
default) and DeepCABAC-coded on its own, as NNCodec's ``compress`` does with
its defaults (``qp=-38``, ``nonweight_qp=-75``, ``qp_density=2``,
``use_dq=True``, ``lambda_scale=0``, ``param_opt=True``,
``cabac_unary_length_minus1=10``, ``scan_order=0``).  No retraining.
"""
from .._errors import ParameterError
from .._progress import Progress
from .._validate import check_int
from ..coding.cabac import check_dq_states
from .size import size_report

__all__ = ["nnc_compress", "DEFAULT_QP", "DEFAULT_NONWEIGHT_QP"]

#: NNCodec 2.1.3's defaults.
DEFAULT_QP = -38
DEFAULT_NONWEIGHT_QP = -75


def nnc_compress(model, *, qp=DEFAULT_QP, nonweight_qp=DEFAULT_NONWEIGHT_QP, qp_density=2,
                 dq=True, scan_order=0, cabac_unary_length_minus1=10, param_opt=True,
                 lambda_scale=0.0, dq_states=8, progress=False):
    """NNC-code every float32 weight of ``model``; returns ``(Model, SizeReport)``.

    Parameters
    ----------
    model : refcomp.Model
    qp : int
        Quantization parameter of the weights with ndim >= 2.
    nonweight_qp : int
        Quantization parameter of the 1-D weights (biases...).
    qp_density, dq, scan_order, cabac_unary_length_minus1, param_opt, lambda_scale, dq_states
        See :func:`refcomp.quantize.nnc_quantize` (``dq_states``: 8, NNC's
        dependent-quantization state machine, default; 4, VVC's).

    Weights already compressed, or not float32, stay as they are.  Each
    weight is independent, so the result does not depend on layer order.
    """
    from ..model import Model
    from ..quantize.nnc_weight import nnc_quantize
    import numpy as np
    if not isinstance(model, Model):
        raise ParameterError("model must be a refcomp.Model, got %s" % type(model).__name__)
    check_int("qp", qp)
    check_int("nonweight_qp", nonweight_qp)
    check_dq_states(dq_states)
    targets = [(p, n, w) for p, l in model.named_layers() for n, w in l.weights.items()
               if isinstance(w, np.ndarray) and w.dtype == np.float32 and w.size > 0]
    bar = Progress(len(targets), "nnc compress", enabled=progress)
    updates = {}
    for path, name, w in targets:
        updates[(path, name)] = nnc_quantize(
            w, qp=qp if w.ndim >= 2 else nonweight_qp, qp_density=qp_density, dq=dq,
            scan_order=scan_order, cabac_unary_length_minus1=cabac_unary_length_minus1,
            param_opt=param_opt, lambda_scale=lambda_scale, dq_states=dq_states)
        bar.update()
    out = model.replace_weights(updates) if updates else model.copy()
    return out, size_report(out)
