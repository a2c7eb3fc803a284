"""Lagrange–Radau orthogonal collocation on finite elements (neural DAE paper §2.1.1).

One module for every discretized DAE of the ``neural_dae`` family: the true-model data
generator, the smoothing problem (step 1), the main NLP (step 3) and the simulation of a
learned model on held-out initial conditions all build on :class:`RadauGrid`.

On [t0, tf] with ``n_fe`` elements of length h and ``K`` Radau points
0 < τ_1 < … < τ_K = 1 per element, a state x(t) is a degree-K polynomial in each element,
interpolating its values at τ_0 = 0 (the element's start) and τ_1..τ_K:

    x(t_i + τ h) = Σ_r ℓ_r(τ) x_{i,r},   ℓ_r the Lagrange basis on τ_0..τ_K.

The collocation equations (paper eq. 8) require the DAE at every collocation point,

    (1/h) Σ_r ℓ_r'(τ_j) x_{i,r} = f(x_{i,j}, y_{i,j}, z_{i,j}),   0 = g(x_{i,j}, y_{i,j}, z_{i,j}),

j = 1..K. Continuity (eq. 9), x_{i+1,0} = x_{i,K} (τ_K = 1 is the element's end), is built in:
the states are one matrix X of N + 1 = n_fe·K + 1 columns, column 0 = t0 and column
1 + i K + (j − 1) = point j of element i, and element i's start is column i K. Algebraic
variables y and closure outputs z live on the N collocation columns only: Radau never
evaluates the DAE at t0, so no consistent-initialisation equations are needed for them
(a model whose *states* must satisfy an algebraic relation at t0, the tank manifold's
x0 = x1, states it as an extra equation on column 0).

With M the (N + 1) × N matrix of the ℓ_r'(τ_j)/h, all collocation equations of a trajectory
are the one matrix equation X M = F(X[:, 1:], Y, Z) (:meth:`RadauGrid.collocation_residual`),
which CasADi evaluates as a single sparse product.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import casadi as ca
import numpy as np

from problems.common.base import check, check_positive_int


def radau_points(K: int) -> np.ndarray:
    """τ_0 = 0 and the K Lagrange–Radau (right) points in (0, 1] (τ_K = 1)."""
    check_positive_int(K, "K")
    return np.concatenate([[0.0], np.asarray(ca.collocation_points(K, "radau"))])


def lagrange_derivatives(tau: np.ndarray) -> np.ndarray:
    """C[r, j] = ℓ_r'(τ_j): derivatives of the Lagrange basis on nodes τ at the nodes."""
    n = len(tau)
    c = np.zeros((n, n))
    for r in range(n):
        others = np.delete(tau, r)
        basis = np.poly1d(others, r=True) / np.prod(tau[r] - others)  # ℓ_r
        c[r] = basis.deriv()(tau)
    return c


@dataclasses.dataclass(frozen=True)
class RadauGrid:
    """n_fe equal finite elements of K Radau points on [t0, tf]."""

    n_fe: int
    K: int
    t0: float
    tf: float

    def __post_init__(self):
        check_positive_int(self.n_fe, "n_fe")
        check_positive_int(self.K, "K")
        check(self.tf > self.t0, "tf", f"must exceed t0 = {self.t0}, got {self.tf}")

    @property
    def h(self) -> float:
        return (self.tf - self.t0) / self.n_fe

    @property
    def n_points(self) -> int:
        """N = n_fe · K collocation points (the columns of Y and Z)."""
        return self.n_fe * self.K

    @cached_property
    def tau(self) -> np.ndarray:
        return radau_points(self.K)

    @cached_property
    def times(self) -> np.ndarray:
        """(N + 1,) t0 then the collocation times, element by element."""
        starts = self.t0 + self.h * np.arange(self.n_fe)
        return np.concatenate([[self.t0], (starts[:, None] + self.h * self.tau[1:]).ravel()])

    @cached_property
    def derivative_matrix(self) -> np.ndarray:
        """M ((N + 1) × N): X M = dx/dt at the collocation points for X on all N + 1 columns."""
        c = lagrange_derivatives(self.tau) / self.h
        m = np.zeros((self.n_points + 1, self.n_points))
        for i in range(self.n_fe):
            rows = i * self.K + np.arange(self.K + 1)
            cols = i * self.K + np.arange(self.K)
            m[np.ix_(rows, cols)] = c[:, 1:]
        return m

    def collocation_residual(self, x, rhs):
        """X M − F: the collocation equations, (n_x × N), for CasADi or NumPy X ((n_x, N+1))
        and F ((n_x, N), f at the collocation points)."""
        m = (
            ca.DM(self.derivative_matrix)
            if isinstance(x, (ca.MX, ca.SX, ca.DM))
            else self.derivative_matrix
        )
        return x @ m - rhs

    def interpolation_matrix(self, t: np.ndarray) -> np.ndarray:
        """B ((N + 1) × len(t)): X B is the collocation polynomial of X at times t."""
        t = np.asarray(t, float)
        i = np.clip(((t - self.t0) // self.h).astype(int), 0, self.n_fe - 1)
        tau = (t - self.t0 - i * self.h) / self.h
        b = np.zeros((self.n_points + 1, len(t)))
        for r in range(self.K + 1):
            others = [q for q in range(self.K + 1) if q != r]
            basis = (
                np.prod([(tau - self.tau[q]) / (self.tau[r] - self.tau[q]) for q in others], axis=0)
                if others
                else np.ones_like(tau)
            )  # ℓ_r(τ)
            b[i * self.K + r, np.arange(len(t))] += basis
        return b

    def interpolate(self, values: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The collocation polynomial of ``values`` ((n, N + 1), on :attr:`times`) at times t."""
        return np.asarray(values) @ self.interpolation_matrix(t)


__all__ = ["RadauGrid", "lagrange_derivatives", "radau_points"]
