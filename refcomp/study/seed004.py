"""Seed 004's Tables 1 and 3 on a model (Fernandez Brillet et al. §3.1.2, §3.2).

Run by :func:`refcomp.study.run_study` when the ``pca`` method is chosen:
for every energy threshold E, PCA of every conv2d and dense layer at E
(:func:`refcomp.decompose.pca_model`, ``layers="all"``: the study's whole
network experiment), then

* Table 1 (and 2): P (stored parameters of the whole network, biases and
  untouched layers included), G = P_orig / P, A (test accuracy) and
  ER = 100 (A_orig - A) / A_orig (signed; the paper prints negative values
  as 0.0);
* Table 3: A and A-R, the accuracy after the coordinate refit of
  :func:`refcomp.decompose.refit_coordinates` on the calibration split
  (the least-squares counterpart of the paper's retraining; activations of
  the refitted model, ``inputs="compressed"``).
"""

from fractions import Fraction

from ..decompose import network_metrics, param_count, pca_model, refit_coordinates

__all__ = ["seed004_tables"]


def seed004_tables(model, x, y, calibration, energies, *, precision="reference",
                   forward="reconstruct"):
    """Rows of seed 004's Tables 1 and 3 for ``model``.

    Parameters
    ----------
    model : refcomp.Model (float weights)
    x, y : test inputs and integer labels
    calibration : (x_cal, y_cal) or None
        Without it the A-R column is omitted (None in every row).
    energies : iterable of int, energy thresholds in %, evaluated in
        decreasing order.
    precision : forward precision of the evaluations.
    forward : pass of the PCA weights ("reconstruct" or "factorized").

    Returns
    -------
    dict
        ``{"model", "layers": "all", "orig": {"P", "A"}, "rows": [{"energy",
        "P", "G", "A", "ER", "A_R", "G_R"}]}`` (``G_R == G``: the refit keeps
        the sizes).
    """
    rows, base = [], None
    for e in sorted(set(int(v) for v in energies), reverse=True):
        mp = pca_model(model, Fraction(e, 100), layers="all", forward=forward)
        met = network_metrics(model, mp, x, y, precision=precision, baseline=base)
        base = met["A_orig"]
        a_r = None
        if calibration is not None:
            mr = refit_coordinates(mp, calibration[0], original=model)
            a_r = network_metrics(model, mr, x, y, precision=precision, baseline=base)["A"]
        rows.append({"energy": e, "P": met["P"], "G": met["G"], "A": met["A"], "ER": met["ER"],
                     "A_R": a_r, "G_R": met["G"]})
    p_orig = param_count(model)
    return {"model": model.name, "layers": "all", "orig": {"P": p_orig, "A": base},
            "rows": rows}
