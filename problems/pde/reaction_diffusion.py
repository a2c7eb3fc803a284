"""Reaction–diffusion: u_t − τ u_xx − α u (1 − u) = 0, Gaussian IC, periodic in x.

Same IC as :mod:`problems.pde.reaction`. No closed form: the reference is computed on the
evaluation grid by Strang operator splitting (trSQP-PINN App. C; the reference code
used Lie splitting with dt = 1/nt against a linspace(0, 1, nt) grid, an off-by-one in
time, which we do not copy):

    half reaction step (exact logistic flow) → exact diffusion step in Fourier space
    (û ← û · e^{−τ k² dt}) → half reaction step,

with ``ref_substeps`` splitting steps per grid interval dt_grid = 1/(N_tgrid − 1), so
the time grid of the reference is exactly the evaluation grid. Strang splitting is
second order in dt; the Fourier diffusion is spectrally accurate in dx (tests check
both). Labeled points are sampled from the evaluation grid (App. B).
Defaults α = 20, τ = 2 (sweeps: α ∈ ±{1, …, 50} at τ = 2; τ ∈ {2, …, 10} at α = 20).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from problems.common.base import check, check_positive_int
from problems.pde.reaction import Reaction, ReactionConfig, logistic_flow


def strang_splitting(
    u0: np.ndarray, alpha: float, tau: float, t: np.ndarray, substeps: int
) -> np.ndarray:
    """Solve u_t = τ u_xx + α u(1 − u) on a periodic grid of [0, 2π), outputs at times t.

    ``u0`` holds the IC at x_j = 2π j / nx; ``t`` is increasing with t[0] = 0. Returns
    (len(t), nx). Each interval [t_n, t_{n+1}] takes ``substeps`` Strang steps.
    """
    nx = u0.shape[0]
    k = np.fft.rfftfreq(nx, d=1.0 / nx)  # integer wave numbers on a 2π-periodic domain
    out = np.empty((len(t), nx))
    out[0] = u = np.asarray(u0, dtype=np.float64)
    for n in range(1, len(t)):
        dt = (t[n] - t[n - 1]) / substeps
        decay = np.exp(-tau * k**2 * dt)
        for _ in range(substeps):
            u = logistic_flow(u, alpha, 0.5 * dt, np)
            u = np.fft.irfft(np.fft.rfft(u) * decay, n=nx)
            u = logistic_flow(u, alpha, 0.5 * dt, np)
        out[n] = u
    return out


@dataclasses.dataclass(frozen=True)
class ReactionDiffusionConfig(ReactionConfig):
    alpha: float = 20.0  # α
    tau: float = 2.0  # τ, the diffusion coefficient
    ref_substeps: int = 4  # Strang steps per evaluation-grid time interval

    def __post_init__(self):
        super().__post_init__()
        check(
            isinstance(self.tau, (int, float)) and self.tau >= 0 and math.isfinite(self.tau),
            "problem.tau",
            f"must be a finite number >= 0, got {self.tau!r}",
        )
        check_positive_int(self.ref_substeps, "problem.ref_substeps")


class ReactionDiffusion(Reaction):
    name = "reaction_diffusion"
    Config = ReactionDiffusionConfig
    labels_on_grid = True

    def pde_residual(self, u, x, t):
        u_xx = jax.grad(jax.grad(u, 0), 0)(x, t)
        return super().pde_residual(u, x, t) - self.cfg.tau * u_xx

    def exact(self, x, t):
        raise NotImplementedError("reaction_diffusion has no closed form; use reference()")

    def reference(self, x, t):
        u0 = self.initial_condition(np.asarray(x), np)
        return strang_splitting(
            u0, self.cfg.alpha, self.cfg.tau, np.asarray(t), self.cfg.ref_substeps
        )
