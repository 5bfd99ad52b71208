"""Weighted logistic regression by Newton steps, and the AUC of weighted rows (:mod:`engine.scoring.lapse_learned`)."""

from __future__ import annotations

import numpy as np

from engine.jit import njit

__all__ = ["fit_logistic", "newton_terms", "predict_logistic", "weighted_auc"]


def fit_logistic(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, ridge: float = 1.0,
                 max_iter: int = 50) -> dict:
    """Logistic regression of ``y`` (bool) on standardised ``X`` [n, k] by Newton steps.

    ``weights``: users per row (default 1); ``ridge``: L2 penalty on the standardised
    coefficients (not the intercept).  Returns {"mean", "scale", "coef" (intercept
    first), "low", "high" (each feature's range over the rows with weight > 0)} as lists of floats.
    """
    w = np.ones(len(X)) if weights is None else np.asarray(weights, np.float64)
    mean = (X * w[:, None]).sum(axis=0) / w.sum()
    scale = np.sqrt(((X - mean) ** 2 * w[:, None]).sum(axis=0) / w.sum())
    scale = np.where(scale > 0, scale, 1.0)
    Z = np.ascontiguousarray(np.column_stack([np.ones(len(X)), (X - mean) / scale]))
    t = np.ascontiguousarray(y, np.float64)
    w = np.ascontiguousarray(w)
    beta = np.zeros(Z.shape[1])
    pen = np.full(Z.shape[1], float(ridge))
    pen[0] = 0.0
    for _ in range(max_iter):
        g, h = newton_terms(Z, w, t, beta)
        g += pen * beta
        h += np.diag(pen + 1e-9)
        step = np.linalg.solve(h, g)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    seen = X[w > 0] if (w > 0).any() else X
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": beta.tolist(),
            "low": seen.min(axis=0).tolist() if len(seen) else None,
            "high": seen.max(axis=0).tolist() if len(seen) else None}


@njit
def newton_terms(Z, w, t, beta):
    """Gradient and Hessian of the weighted logistic negative log-likelihood at ``beta``, one pass
    over the rows: ``g = Z' (w (p - t))``, ``h = Z' diag(w p (1 - p)) Z`` with ``p = 1/(1 + exp(-Z beta))``.

    ``Z`` [n, k] float64 (C order), ``w``/``t`` float64[n]; returns float64[k], float64[k, k].
    Sums run in row order (no BLAS threads: on a busy machine a threaded product of a 5-column
    matrix took 20x longer than this loop).
    """
    n, k = Z.shape
    g = np.zeros(k)
    h = np.zeros((k, k))
    for i in range(n):
        eta = 0.0
        for j in range(k):
            eta += Z[i, j] * beta[j]
        p = 1.0 / (1.0 + np.exp(-eta))
        r = w[i] * (p - t[i])
        v = w[i] * p * (1.0 - p)
        for j in range(k):
            zj = Z[i, j]
            g[j] += zj * r
            zv = zj * v
            for m in range(j + 1):
                h[j, m] += zv * Z[i, m]
    for j in range(k):
        for m in range(j):
            h[m, j] = h[j, m]
    return g, h


def predict_logistic(model: dict, X: np.ndarray) -> np.ndarray:
    """P(y) for each row of ``X`` [n, k] under :func:`fit_logistic`'s model.

    Each feature is first clipped to the range the model was fitted on (``low``/``high``): a
    linear predictor extrapolated past its data can send a user far outside it to P = 0 or 1
    (models saved before the range was kept are applied unclipped)."""
    if model.get("low") is not None:
        X = np.clip(X, np.asarray(model["low"]), np.asarray(model["high"]))
    z = (X - np.asarray(model["mean"])) / np.asarray(model["scale"])
    coef = np.asarray(model["coef"])
    with np.errstate(over="ignore"):  # exp(-eta) = inf is P = 0 exactly
        return 1.0 / (1.0 + np.exp(-(coef[0] + z @ coef[1:])))


def weighted_auc(score: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> float:
    """Mann-Whitney AUC of rows holding ``n_pos`` positives and ``n_neg`` negatives each (ties half)."""
    u, inv = np.unique(score, return_inverse=True)
    pos = np.bincount(inv, n_pos, len(u))
    neg = np.bincount(inv, n_neg, len(u))
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
