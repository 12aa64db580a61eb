"""Plain-NumPy references used by the tests (independent of jaxnet's solver)."""

import numpy as np


def numpy_laplacian(edges, k, n):
    lap = np.zeros((n, n))
    for (a, b), g in zip(np.asarray(edges), np.asarray(k, dtype=float)):
        lap[a, a] += g
        lap[b, b] += g
        lap[a, b] -= g
        lap[b, a] -= g
    return lap


def numpy_solve(edges, k, n, fixed, values):
    """Kirchhoff solve by the reduced Laplacian: L_ff V_f = -L_fF V_F, one example per row."""
    lap = numpy_laplacian(edges, k, n)
    fixed = np.asarray(fixed)
    free = np.setdiff1d(np.arange(n), fixed)
    values = np.atleast_2d(np.asarray(values, dtype=float))
    out = np.zeros((values.shape[0], n))
    out[:, fixed] = values
    rhs = -lap[np.ix_(free, fixed)] @ values.T
    out[:, free] = np.linalg.solve(lap[np.ix_(free, free)], rhs).T
    return out
