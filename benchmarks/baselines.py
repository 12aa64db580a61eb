"""In-process baselines: careful NumPy/SciPy implementations of what jaxnet does.

- `dense_solve` / `sparse_solve`: Kirchhoff solves by the reduced Laplacian, dense Cholesky
  (LAPACK via SciPy) or SciPy sparse LU (SuperLU), all examples as right-hand sides of one
  factorization.
- `CoupledLearningNumpy`: full-batch coupled learning as the public research codes do it:
  each step solves the free and the clamped state (two factorizations, examples as columns),
  dense Cholesky or sparse LU.
- `GradientDescentNumpy`: full-batch gradient descent with the gradient by the adjoint method
  (one factorization, forward and adjoint solves).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg


class Kirchhoff:
    """A network's reduced Laplacian, assembled fast for any conductances and fixed set."""

    def __init__(self, senders, receivers, n_nodes, fixed):
        self.s, self.r, self.n = np.asarray(senders), np.asarray(receivers), n_nodes
        self.fixed = np.asarray(fixed)
        self.free = np.setdiff1d(np.arange(n_nodes), self.fixed)
        index = np.full(n_nodes, -1)
        index[self.free] = np.arange(len(self.free))
        self.index = index
        fixed_index = np.full(n_nodes, -1)
        fixed_index[self.fixed] = np.arange(len(self.fixed))
        self.fixed_index = fixed_index

    def blocks(self, k, sparse: bool):
        """`(L_ff, L_fF)`: free-free block (dense or CSC) and free-fixed block (dense)."""
        s, r, nf = self.s, self.r, len(self.free)
        rows = np.concatenate([s, r, s, r])
        cols = np.concatenate([s, r, r, s])
        vals = np.concatenate([k, k, -k, -k])
        fr, fc = self.index[rows], self.index[cols]
        inner = (fr >= 0) & (fc >= 0)
        cross = (fr >= 0) & (self.fixed_index[cols] >= 0)
        l_fx = np.zeros((nf, len(self.fixed)))
        np.add.at(l_fx, (fr[cross], self.fixed_index[cols][cross]), vals[cross])
        if sparse:
            l_ff = scipy.sparse.csc_matrix((vals[inner], (fr[inner], fc[inner])), shape=(nf, nf))
        else:
            l_ff = np.zeros((nf, nf))
            np.add.at(l_ff, (fr[inner], fc[inner]), vals[inner])
        return l_ff, l_fx

    def solve(self, k, values, sparse: bool):
        """Node voltages `(D, N)` for fixed values `(D, F)`; one factorization."""
        l_ff, l_fx = self.blocks(k, sparse)
        rhs = -l_fx @ values.T
        if sparse:
            x = scipy.sparse.linalg.splu(l_ff).solve(rhs)
        else:
            x = scipy.linalg.cho_solve(scipy.linalg.cho_factor(l_ff, lower=True, check_finite=False), rhs, check_finite=False)
        out = np.empty((values.shape[0], self.n))
        out[:, self.fixed] = values
        out[:, self.free] = x.T
        return out


def solve(senders, receivers, n_nodes, k, fixed, values, sparse=False):
    """One-off Kirchhoff solve (NumPy/SciPy): voltages `(D, N)`."""
    return Kirchhoff(senders, receivers, n_nodes, fixed).solve(np.asarray(k, float), np.atleast_2d(values), sparse)


class CoupledLearningNumpy:
    """Full-batch coupled learning, free and clamped states by two factorizations per step."""

    def __init__(self, net, task, alpha, eta, k_min=1e-6, k_max=1e6, sparse=False):
        inputs, outputs, ground = (np.asarray(a) for a in (task.inputs, task.outputs, task.ground))
        s, r, n = np.asarray(net.senders), np.asarray(net.receivers), net.n_nodes
        self.s, self.r, self.outputs = s, r, outputs
        self.free_sys = Kirchhoff(s, r, n, np.concatenate([inputs, ground]))
        self.clamp_sys = Kirchhoff(s, r, n, np.concatenate([inputs, ground, outputs]))
        x = np.asarray(task.x_train, float)
        self.values = np.concatenate([x, np.zeros((len(x), len(ground)))], axis=1)
        self.y = np.asarray(task.y_train, float)
        self.alpha, self.eta, self.k_min, self.k_max, self.sparse = alpha, eta, k_min, k_max, sparse

    def step(self, k):
        free = self.free_sys.solve(k, self.values, self.sparse)
        vo = free[:, self.outputs]
        clamped = self.clamp_sys.solve(k, np.concatenate([self.values, vo + self.eta * (self.y - vo)], 1), self.sparse)
        df = free[:, self.s] - free[:, self.r]
        dc = clamped[:, self.s] - clamped[:, self.r]
        dk = self.alpha / self.eta * np.mean(df**2 - dc**2, axis=0)
        return np.clip(k + dk, self.k_min, self.k_max)

    def run(self, k, steps):
        k = np.array(k, float)
        for _ in range(steps):
            k = self.step(k)
        return k


class GradientDescentNumpy:
    """Full-batch gradient descent; gradient by the adjoint method with one factorization."""

    def __init__(self, net, task, lr, k_min=1e-6, k_max=1e6):
        inputs, outputs, ground = (np.asarray(a) for a in (task.inputs, task.outputs, task.ground))
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

    def run(self, k, steps):
        k = np.array(k, float)
        for _ in range(steps):
            k = self.step(k)
        return k
