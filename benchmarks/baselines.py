"""In-process baselines: careful NumPy/SciPy implementations of what jaxnet does.

- `Kirchhoff.solve`: Kirchhoff solves by the reduced Laplacian, all examples as right-hand
  sides of one factorization, with one of three solvers: ``"cholesky"`` (LAPACK via SciPy),
  ``"inverse"`` (explicit dense inverse, as the fastest public coupled-learning code does) or
  ``"splu"`` (SciPy sparse LU, SuperLU).
- `CoupledLearningNumpy`: full-batch coupled learning as the public research codes do it:
  each step solves the free and the clamped state (two factorizations, examples as columns).
- `GradientDescentNumpy`: full-batch gradient descent with the gradient by the adjoint method
  (one Cholesky factorization, forward and adjoint solves).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

SOLVERS = ("cholesky", "inverse", "splu")


class Kirchhoff:
    """A network's reduced Laplacian, assembled fast (bincount) for any conductances."""

    def __init__(self, senders, receivers, n_nodes, fixed):
        self.s, self.r, self.n = np.asarray(senders), np.asarray(receivers), n_nodes
        self.fixed = np.asarray(fixed)
        self.free = np.setdiff1d(np.arange(n_nodes), self.fixed)
        self.index = np.full(n_nodes, -1)
        self.index[self.free] = np.arange(len(self.free))
        self.fixed_index = np.full(n_nodes, -1)
        self.fixed_index[self.fixed] = np.arange(len(self.fixed))
        rows = np.concatenate([self.s, self.r, self.s, self.r])
        cols = np.concatenate([self.s, self.r, self.r, self.s])
        fr, fc, xc = self.index[rows], self.index[cols], self.fixed_index[cols]
        self.inner, self.cross = (fr >= 0) & (fc >= 0), (fr >= 0) & (xc >= 0)
        nf, nx = len(self.free), len(self.fixed)
        self.inner_flat = fr[self.inner] * nf + fc[self.inner]
        self.inner_rc = (fr[self.inner], fc[self.inner])
        self.cross_flat = fr[self.cross] * nx + xc[self.cross]

    def blocks(self, k, sparse: bool):
        """`(L_ff, L_fF)`: free-free block (dense, or CSC if `sparse`) and free-fixed block."""
        nf, nx = len(self.free), len(self.fixed)
        vals = np.concatenate([k, k, -k, -k])
        l_fx = np.bincount(self.cross_flat, vals[self.cross], nf * nx).reshape(nf, nx)
        if sparse:
            l_ff = scipy.sparse.csc_matrix((vals[self.inner], self.inner_rc), shape=(nf, nf))
        else:
            l_ff = np.bincount(self.inner_flat, vals[self.inner], nf * nf).reshape(nf, nf)
        return l_ff, l_fx

    def solve(self, k, values, solver: str = "cholesky"):
        """Node voltages `(D, N)` for fixed values `(D, F)`; one factorization."""
        l_ff, l_fx = self.blocks(k, solver == "splu")
        rhs = -l_fx @ values.T
        if solver == "splu":
            x = scipy.sparse.linalg.splu(l_ff).solve(rhs)
        elif solver == "inverse":
            x = np.linalg.inv(l_ff) @ rhs
        else:
            factor = scipy.linalg.cho_factor(l_ff, lower=True, check_finite=False)
            x = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
        out = np.empty((values.shape[0], self.n))
        out[:, self.fixed] = values
        out[:, self.free] = x.T
        return out


def _terminals(task):
    return tuple(np.asarray(a) for a in (task.inputs, task.outputs, task.ground))


class CoupledLearningNumpy:
    """Full-batch coupled learning, free and clamped states by two factorizations per step."""

    def __init__(self, net, task, alpha, eta, k_min=1e-6, k_max=1e6, solver="cholesky"):
        inputs, outputs, ground = _terminals(task)
        s, r, n = np.asarray(net.senders), np.asarray(net.receivers), net.n_nodes
        self.s, self.r, self.outputs = s, r, outputs
        self.free_sys = Kirchhoff(s, r, n, np.concatenate([inputs, ground]))
        self.clamp_sys = Kirchhoff(s, r, n, np.concatenate([inputs, ground, outputs]))
        x = np.asarray(task.x_train, float)
        self.values = np.concatenate([x, np.zeros((len(x), len(ground)))], axis=1)
        self.y = np.asarray(task.y_train, float)
        self.alpha, self.eta, self.k_min, self.k_max, self.solver = alpha, eta, k_min, k_max, solver

    def step(self, k):
        free = self.free_sys.solve(k, self.values, self.solver)
        vo = free[:, self.outputs]
        nudged = np.concatenate([self.values, vo + self.eta * (self.y - vo)], 1)
        clamped = self.clamp_sys.solve(k, nudged, self.solver)
        df = free[:, self.s] - free[:, self.r]
        dc = clamped[:, self.s] - clamped[:, self.r]
        return np.clip(k + self.alpha / self.eta * np.mean(df**2 - dc**2, axis=0), self.k_min, self.k_max)

    def run(self, k, steps):
        k = np.array(k, float)
        for _ in range(steps):
            k = self.step(k)
        return k


class GradientDescentNumpy:
    """Full-batch gradient descent; gradient by the adjoint method with one factorization."""

    def __init__(self, net, task, lr, k_min=1e-6, k_max=1e6):
        inputs, outputs, ground = _terminals(task)
        self.s, self.r, self.outputs = np.asarray(net.senders), np.asarray(net.receivers), outputs
        self.sys = Kirchhoff(self.s, self.r, net.n_nodes, np.concatenate([inputs, ground]))
        x = np.asarray(task.x_train, float)
        self.values = np.concatenate([x, np.zeros((len(x), len(ground)))], axis=1)
        self.y = np.asarray(task.y_train, float)
        self.lr, self.k_min, self.k_max = lr, k_min, k_max
        self.out_rows = self.sys.index[outputs]

    def step(self, k):
        l_ff, l_fx = self.sys.blocks(k, sparse=False)
        factor = scipy.linalg.cho_factor(l_ff, lower=True, check_finite=False)
        v = np.empty((len(self.values), self.sys.n))
        v[:, self.sys.fixed] = self.values
        v[:, self.sys.free] = scipy.linalg.cho_solve(factor, -l_fx @ self.values.T, check_finite=False).T
        g = np.zeros((len(self.sys.free), len(self.values)))
        g[self.out_rows] = (v[:, self.outputs] - self.y).T / len(self.values)
        u = np.zeros_like(v)
        u[:, self.sys.free] = scipy.linalg.cho_solve(factor, g, check_finite=False).T
        grad = -np.sum((v[:, self.s] - v[:, self.r]) * (u[:, self.s] - u[:, self.r]), axis=0)
        return np.clip(k - self.lr * grad, self.k_min, self.k_max)

    run = CoupledLearningNumpy.run
