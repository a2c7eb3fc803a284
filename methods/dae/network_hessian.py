"""The exact Hessian of the main NLP's Lagrangian, with the network part assembled in JAX
(neural DAE ablation D and the refinement step 4). On the tank manifold (1,282 weights,
120 collocation points) CasADi's AD Hessian of the whole Lagrangian, with the network mapped
over the points, takes about 7 minutes to build and 1.3 s per evaluation; assembled here,
1.3 s to build and 0.3 s per evaluation (`make bench`).

The Lagrangian of step 3 is

    L = λ_f f(w) + Σ_r λ_r g_r(w),

w = (states, algebraic variables, closures, θ). Every term but the network equations
z_p − NN(x_p; θ) = 0 at the collocation points p is sparse, and CasADi's AD Hessian of them
(expanded to SX) is cheap. The network part, −Σ_p μ_pᵀ NN(x_p; θ) with μ_p the multipliers
of point p's network equations, couples θ with itself densely (n_θ² entries) and with each
x_p; its second derivatives come from JAX here, in three blocks:

    H_θθ = −∇²_θ Σ_p μ_pᵀ NN(x_p; θ)         (n_θ × n_θ, one forward-over-reverse Hessian)
    H_xθ = −∂²(μ_pᵀ NN(x_p; θ))/∂x_p ∂θ      (per point, n_x × n_θ)
    H_xx = −∇²_x (μ_pᵀ NN(x_p; θ))           (per point, n_x × n_x)

and are scattered into the upper triangle of the NLP's Hessian (IPOPT reads triu). The sum
is the same matrix as CasADi's Hessian of the whole Lagrangian, to rounding (checked in
tests/test_neural_dae.py), so IPOPT's iterates do not change: only the time per evaluation.

``NN`` is the network of :meth:`problems.dae.base.DaeProblem.network_function`:
z = z̄ + σ_z ⊙ MLP((x − x̄)/σ_x; θ), θ each layer's W (row by row) then b.
"""

from __future__ import annotations

import casadi as ca
import jax
import jax.numpy as jnp
import numpy as np

JAX_ACTIVATIONS = {  # the same formulas as problems.dae.base.CASADI_ACTIVATIONS
    "tanh": jnp.tanh,
    "softplus": lambda v: jnp.log1p(jnp.exp(-jnp.abs(v))) + jnp.maximum(v, 0),
    "sigmoid": lambda v: 1 / (1 + jnp.exp(-v)),
}


def jax_network(shapes, activation: str, x_mean, x_std, z_mean, z_std):
    """NN(x; θ) in JAX for layer shapes [(in, out)] and flat θ (the CasADi layout)."""
    act = JAX_ACTIVATIONS[activation]
    # NumPy float64 constants: traced in whatever precision the caller runs (x64 here)
    x_mean, x_std, z_mean, z_std = (
        np.asarray(a, np.float64) for a in (x_mean, x_std, z_mean, z_std)
    )

    def nn(theta, x):
        h, k = (x - x_mean) / x_std, 0
        for i, (n_in, n_out) in enumerate(shapes):
            w = theta[k : k + n_in * n_out].reshape(n_in, n_out)
            b = theta[k + n_in * n_out : k + n_in * n_out + n_out]
            k += n_in * n_out + n_out
            h = w.T @ h + b
            if i < len(shapes) - 1:
                h = act(h)
        return z_mean + z_std * h

    return nn


def network_blocks(nn):
    """A jitted (θ, X (P, n_x), M (P, n_z)) -> (H_θθ, H_xθ (P, n_x, n_θ), H_xx (P, n_x, n_x))
    of −Σ_p μ_pᵀ NN(x_p; θ)."""

    def point(x, theta, mu):
        return -jnp.dot(mu, nn(theta, x))

    def total(theta, xs, mus):
        return jnp.sum(jax.vmap(point, (0, None, 0))(xs, theta, mus))

    h_tt = jax.hessian(total, argnums=0)
    h_xt = jax.vmap(jax.jacfwd(jax.grad(point, argnums=0), argnums=1), (0, None, 0))
    h_xx = jax.vmap(jax.hessian(point, argnums=0), (0, None, 0))

    @jax.jit
    def blocks(theta, xs, mus):
        return h_tt(theta, xs, mus), h_xt(xs, theta, mus), h_xx(xs, theta, mus)

    return blocks


class NetworkHessian(ca.Callback):
    """CasADi callback (x, λ_g) -> the network part of the Lagrangian Hessian, upper
    triangle, as a sparse nx × nx matrix of fixed sparsity.

    ``x_index`` (P, n_x): where each collocation point's network inputs sit in the NLP's x;
    ``mu_index`` (P, n_z): the rows of its network equations in g (g = z − NN);
    ``theta_index`` (n_θ,): θ in x (increasing)."""

    def __init__(self, name: str, nx: int, ng: int, x_index, mu_index, theta_index, nn):
        ca.Callback.__init__(self)
        self.nx, self.ng = nx, ng
        self.x_index = np.asarray(x_index, int)
        self.mu_index = np.asarray(mu_index, int)
        self.theta_index = np.asarray(theta_index, int)
        assert np.all(np.diff(self.theta_index) > 0)
        self.blocks = network_blocks(nn)
        P, n_x = self.x_index.shape
        n_t = len(self.theta_index)
        t = self.theta_index
        # entries in block order: θθ (upper), xθ, xx (upper); then sorted into CCS order
        a, b = np.triu_indices(n_t)
        self.tt = (a, b)
        r_tt, c_tt = t[a], t[b]
        xi = np.repeat(self.x_index[:, :, None], n_t, axis=2)  # (P, n_x, n_θ)
        tj = np.broadcast_to(t, (P, n_x, n_t))
        r_xt, c_xt = np.minimum(xi, tj).ravel(), np.maximum(xi, tj).ravel()
        i, j = np.triu_indices(n_x)
        self.xx = (i, j)
        xa, xb = self.x_index[:, i], self.x_index[:, j]  # (P, n_pairs)
        r_xx, c_xx = np.minimum(xa, xb).ravel(), np.maximum(xa, xb).ravel()
        rows = np.concatenate([r_tt, r_xt, r_xx])
        cols = np.concatenate([c_tt, c_xt, c_xx])
        key = cols.astype(np.int64) * nx + rows
        assert len(np.unique(key)) == len(key), "overlapping Hessian entries"
        self.order = np.argsort(key, kind="stable")
        rows, cols = rows[self.order], cols[self.order]
        colind = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=nx))])
        self.sp = ca.Sparsity(nx, nx, colind.tolist(), rows.tolist())
        self.construct(name, {})

    def get_n_in(self):
        return 2

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.nx if i == 0 else self.ng, 1)

    def get_sparsity_out(self, i):
        return self.sp

    def values(self, x, lam_g) -> np.ndarray:
        """The nonzeros in the sparsity's (CCS) order."""
        x = np.asarray(x, float).ravel()
        lam = np.asarray(lam_g, float).ravel()
        with jax.enable_x64(True):
            h_tt, h_xt, h_xx = self.blocks(
                jnp.asarray(x[self.theta_index]),
                jnp.asarray(x[self.x_index]),
                jnp.asarray(lam[self.mu_index]),
            )
            h_tt, h_xt, h_xx = (np.asarray(h) for h in (h_tt, h_xt, h_xx))
        vals = np.concatenate(
            [h_tt[self.tt], h_xt.ravel(), h_xx[:, self.xx[0], self.xx[1]].ravel()]
        )
        return vals[self.order]

    def eval(self, args):
        return [ca.DM(self.sp, self.values(args[0], args[1]))]


def index_of(x: ca.MX, expr: ca.MX) -> np.ndarray:
    """Positions in ``x`` (the NLP's decision vector) of the entries of ``expr`` (a
    variable or a slice of one), in ``vec(expr)`` order."""
    f = ca.Function("index", [x], [ca.vec(expr)])
    return np.asarray(f(np.arange(x.shape[0], dtype=float)), float).ravel().round().astype(int)


def fast_hessian(
    opti: ca.Opti, objective: ca.MX, network: list, theta: ca.MX, nn_outputs: list, nn
) -> tuple[ca.Function, NetworkHessian]:
    """``hess_lag`` for ``opti``'s IPOPT: CasADi's Hessian of the Lagrangian with the network
    outputs replaced by zeros (what remains is sparse; expanded to SX) + the network part
    from :class:`NetworkHessian`.

    ``network``: per trajectory (first row of its network equations in g, its inputs Xc
    (n_x × n), n_z), the equations being ``vec(Z − NN(Xc; θ)) == 0`` (n_z rows per point,
    point by point); ``nn_outputs``: the MX expressions NN(Xc; θ) inside those equations;
    ``nn``: the same network in JAX (:func:`jax_network`). Returns (the Function, the
    callback, which must be kept alive as long as the Function)."""
    x, g = opti.x, opti.g
    nx, ng = x.shape[0], g.shape[0]
    lam_f = ca.MX.sym("lam_f")
    lam_g = ca.MX.sym("lam_g", ng)
    x_index, mu_index = [], []
    for first, xc, n_z in network:
        n_x, n = xc.shape
        x_index.append(index_of(x, xc).reshape(n, n_x))  # vec is column-major: by point
        mu_index.append(first + np.arange(n * n_z).reshape(n, n_z))
    cb = NetworkHessian(
        "network_hessian",
        nx,
        ng,
        np.concatenate(x_index),
        np.concatenate(mu_index),
        index_of(x, theta),
        nn,
    )
    zeros = [ca.MX.zeros(e.sparsity()) for e in nn_outputs]
    g_rest, f_rest = ca.graph_substitute([g, objective], nn_outputs, zeros)
    lagrangian = lam_f * f_rest + ca.dot(lam_g, g_rest)
    h_rest = ca.triu(ca.hessian(lagrangian, x)[0])
    rest = ca.Function("hess_rest", [x, lam_f, lam_g], [h_rest]).expand()
    p = opti.p
    hess = ca.Function(
        "hess_lag",
        [x, p, lam_f, lam_g],
        [rest(x, lam_f, lam_g) + cb(x, lam_g)],
        ["x", "p", "lam_f", "lam_g"],
        ["triu_hess_gamma_x_x"],
    )
    return hess, cb
