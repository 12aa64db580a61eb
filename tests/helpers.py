"""Plain-NumPy references used by the tests (independent of jaxnet's solver), and a custom rule two test files share."""

import numpy as np

import jaxnet as jn


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


def numpy_states(edges, k, n, task, x, y, eta):
    """Free and clamped states by two separate reduced-Laplacian solves (no shared tricks)."""
    inputs, outputs, ground = (np.asarray(a) for a in (task.inputs, task.outputs, task.ground))
    fixed = np.concatenate([inputs, ground])
    values = np.concatenate([x, np.zeros((len(x), len(ground)))], axis=1)
    free = numpy_solve(edges, k, n, fixed, values)
    nudged = free[:, outputs] + eta * (y - free[:, outputs])
    clamped = numpy_solve(edges, k, n, np.concatenate([fixed, outputs]), np.concatenate([values, nudged], axis=1))
    return free, clamped


def numpy_contrast(edges, k, n, task, x, y, eta):
    """mean over examples of [(dV_F)^2 - (dV_C)^2] per edge."""
    free, clamped = numpy_states(edges, k, n, task, x, y, eta)
    drop = lambda v: v[:, edges[:, 0]] - v[:, edges[:, 1]]  # noqa: E731
    return np.mean(drop(free) ** 2 - drop(clamped) ** 2, axis=0)


def numpy_loss_and_grad(edges, k, n, task, x, y):
    """Loss 0.5 mean sum (V_O - y)^2 and its gradient by the adjoint method, written out."""
    inputs, outputs, ground = (np.asarray(a) for a in (task.inputs, task.outputs, task.ground))
    fixed = np.concatenate([inputs, ground])
    values = np.concatenate([x, np.zeros((len(x), len(ground)))], axis=1)
    V = numpy_solve(edges, k, n, fixed, values)
    err = V[:, outputs] - y
    loss = 0.5 * np.mean(np.sum(err**2, axis=1))
    lap = numpy_laplacian(edges, k, n)
    free = np.setdiff1d(np.arange(n), fixed)
    g = np.zeros((len(x), n))
    g[:, outputs] = err / len(x)
    u = np.zeros((len(x), n))
    u[:, free] = np.linalg.solve(lap[np.ix_(free, free)], g[:, free].T).T
    drop = lambda v: v[:, edges[:, 0]] - v[:, edges[:, 1]]  # noqa: E731
    return loss, -np.sum(drop(V) * drop(u), axis=0)


class Unclipped(jn.rules.Rule):
    """A custom rule that forgets to clip: conductances go negative."""

    def init(self, key, k):
        return None

    def update(self, key, k, physics, state):
        d, meas = physics.coupled_contrast(k, 1e-3)
        return k - 5.0 + 0 * d, state, meas
