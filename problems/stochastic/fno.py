"""A 2-D Fourier neural operator in Flax (Li et al., ICLR 2021), as neuraloperator 0.3 builds it.

For Darcy (SQP momentum paper §5.4: "three channels", "4 hidden layers (the default)")
the authors' code (github.com/chripiermarini/Physics_informed_machine_learning,
``nn_architecture.py`` and ``problems/problem_darcy.py``) builds
``neuralop.models.FNO(n_modes=(16, 16), hidden_channels=4, ...)`` with the library's other
defaults, pinning ``neuraloperator==0.3.0`` (its ``requirements.txt``); this is that
network written in Flax (the PyTorch package is not a dependency). Layout is channels
last, (..., H, W, C), any leading batch dimensions.

* lifting: pointwise MLP C_in → ``lifting_channels`` (256) → hidden (4), GELU between;
* ``n_layers`` (4) Fourier layers v ← σ(K v + W v), K the spectral convolution below,
  W a pointwise linear map without bias (neuralop's "linear" skip), σ = GELU (exact, erf)
  after every layer but the last;
* projection: pointwise MLP hidden → ``projection_channels`` (256) → C_out, GELU between.

The pointwise layers (lifting, skips, projection) are 1 × 1 convolutions in neuraloperator,
initialised as PyTorch does: ``initialization="torch"`` gives them U(±1/√fan_in) weights
and biases, ``"flax"`` Flax's ``nn.Dense`` defaults.

Spectral convolution (:class:`SpectralConv2d`): y = irfft2(R · rfft2(v)) + b, where R
multiplies each kept Fourier mode by a learned complex C_in × C_out matrix. ``modes =
(M1, M2)`` keeps, in neuraloperator's convention, the frequencies
k1 ∈ {−⌊M1/2⌋, …, ⌈M1/2⌉ − 1} along H and k2 ∈ {0, …, ⌊M2/2⌋} along the rfft axis W
(16 × 9 modes for (16, 16)), clipped to what the grid holds (on a 16 × 16 grid: all of
them). The weights are indexed by absolute frequency, so one set of weights acts on any
grid size: for a field band-limited below both grids' Nyquist frequencies the layer gives
the same function on a 16 × 16 and on a 32 × 32 grid (resolution invariance).
Weights are stored as real and imaginary parts (one real parameter with a trailing axis
of 2, so optimizers and Jacobians see a real pytree), initialised N(0, 1/(C_in + C_out))
each, i.e. a complex normal with neuraloperator's std sqrt(2/(C_in + C_out)); the bias is
zero.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from problems.common import networks


def kept_modes(n: int, m: int) -> tuple[int, int]:
    """(non-negative, negative) frequency counts kept along a full-FFT axis of n points."""
    return min(m - m // 2, n - n // 2), min(m // 2, n // 2)


class SpectralConv2d(nn.Module):
    """Fourier-space convolution on the last two spatial axes (channels last)."""

    features: int
    modes: tuple[int, int] = (16, 16)
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, v):
        h, w, c_in = v.shape[-3:]
        m1, m2 = self.modes
        # rows in FFT order (k1 = 0, 1, …, −1); last axis: real and imaginary part
        shape = (m1, m2 // 2 + 1, c_in, self.features, 2)
        init = nn.initializers.normal(1.0 / math.sqrt(c_in + self.features))
        w_ri = self.param("weight", init, shape, self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        weight = w_ri[..., 0] + 1j * w_ri[..., 1]

        vh = jnp.fft.rfft2(v, axes=(-3, -2))  # (..., H, W//2 + 1, C_in)
        pos, neg = kept_modes(h, m1)
        cols = min(m2 // 2 + 1, w // 2 + 1)
        mix = lambda a, b: jnp.einsum("...xyi,xyio->...xyo", a, b)
        out = jnp.zeros((*vh.shape[:-1], self.features), vh.dtype)
        out = out.at[..., :pos, :cols, :].set(mix(vh[..., :pos, :cols, :], weight[:pos, :cols]))
        if neg:
            out = out.at[..., h - neg :, :cols, :].set(
                mix(vh[..., h - neg :, :cols, :], weight[m1 - neg :, :cols])
            )
        y = jnp.fft.irfft2(out, s=(h, w), axes=(-3, -2))
        return y.astype(v.dtype) + bias


def take_levels(table, select):
    """Fields from a per-pixel table: table (K, H, W, C), select (..., H, W) in {0..K−1}
    -> (..., H, W, C), pixel (i, j) of a field = table[select[..., i, j], i, j].
    Σ_k [select = k] · table_k: elementwise, so its transpose (what per-sample gradients
    run) is elementwise too, where a gather's would be a scatter-add."""
    return sum(jnp.where((select == k)[..., None], table[k], 0.0) for k in range(table.shape[0]))


def gelu_and_slope(z):
    """GELU (exact) and its derivative Φ(z) + z φ(z) at z."""
    cdf = 0.5 * (1.0 + jax.scipy.special.erf(z / math.sqrt(2.0)))
    return z * cdf, cdf + z * jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def lifting_pullbacks(params, v, cotangents, lifting_channels: int):
    """Gradients of ⟨C_k, lift(v)⟩ w.r.t. the lifting's weights, for K cotangents at once.

    v (..., C_in) the inputs of :class:`FNO`'s lifting (pointwise, any leading axes),
    ``cotangents`` (K, ..., hidden), ``lifting_channels`` the FNO's (0: one linear layer).
    Returns ``{"Dense_0": ..., "Dense_1": ...}`` (the lifting's layers, as in
    ``params["params"]``) with a leading axis K. The same numbers as ``jax.vmap`` of the
    lifting's ``jax.vjp``, written as three matrix products over the pixels shared by all K,
    where the vmapped pullback forms a K × pixels × 256 array (5× the time on Darcy's 50
    constraints: 28 against 5.8 ms here). With lift(v) = W₂ᵀ gelu(W₁ᵀv + b₁) + b₂, z = W₁ᵀv + b₁:
    ∂/∂W₂ = Σ_q gelu(z_q) C_kqᵀ, ∂/∂b₂ = Σ_q C_kq, ∂/∂b₁ = Σ_q gelu'(z_q) ∘ (W₂ C_kq),
    ∂/∂W₁ = Σ_q v_q (gelu'(z_q) ∘ (W₂ C_kq))ᵀ.
    """
    p = params["params"]
    x = v.reshape(-1, v.shape[-1])  # (q, i)
    k = cotangents.shape[0]
    cot = cotangents.reshape(k, x.shape[0], -1)  # (K, q, o)
    cot_q = jnp.transpose(cot, (1, 0, 2)).reshape(x.shape[0], -1)  # (q, K·o)
    if not lifting_channels:  # no hidden lifting layer: lift(v) = W₀ᵀv + b₀
        w = (x.T @ cot_q).reshape(x.shape[1], k, -1).transpose(1, 0, 2)
        return {"Dense_0": {"kernel": w, "bias": cot.sum(1)}}
    w1, b1, w2 = p["Dense_1"]["kernel"], p["Dense_1"]["bias"], p["Dense_0"]["kernel"]
    act, slope = gelu_and_slope(x @ w1 + b1)  # (q, h)
    n_h = act.shape[1]
    w2_grad = (act.T @ cot_q).reshape(n_h, k, -1).transpose(1, 0, 2)  # (K, h, o)
    b1_grad = jnp.einsum("hko,ho->kh", (slope.T @ cot_q).reshape(n_h, k, -1), w2)
    xs = (x[:, :, None] * slope[:, None, :]).reshape(x.shape[0], -1)  # (q, i·h)
    w1_grad = jnp.einsum("ihko,ho->kih", (xs.T @ cot_q).reshape(x.shape[1], n_h, k, -1), w2)
    return {
        "Dense_0": {"kernel": w2_grad, "bias": cot.sum(1)},
        "Dense_1": {"kernel": w1_grad, "bias": b1_grad},
    }


class FNO(nn.Module):
    """Lifting → n_layers Fourier layers → projection (neuraloperator 0.3 ``FNO`` defaults)."""

    modes: tuple[int, int] = (16, 16)
    hidden_channels: int = 4
    n_layers: int = 4
    lifting_channels: int = 256
    projection_channels: int = 256
    out_channels: int = 1
    param_dtype: jnp.dtype = jnp.float64
    initialization: str = "flax"  # pointwise layers: "flax" | "torch" (problems.common.networks)

    @nn.compact
    def __call__(self, v, at=None, stage="all"):
        """v (..., H, W, C_in) -> (..., H, W, C_out); with ``at = (rows, cols)`` (index
        arrays of equal length P) only the output at those pixels, (..., P, C_out): the
        projection is pointwise, so the other pixels' projections are never computed.

        ``stage``: ``"all"``; ``"lift"`` returns the lifted v (..., H, W, hidden) and
        ``"body"`` takes a lifted v through the rest. The lifting is pointwise: where each
        pixel's input takes one of a few values, the caller lifts a table of them once and
        picks each field's pixels from it (:func:`take_levels`; Darcy's coefficient has two
        values, and the lifting's 256-channel GELU layer is most of a forward pass).
        """

        def dense(n, fan_in, name, **kw):  # a pointwise layer with ``fan_in`` input channels
            return networks.dense(
                n,
                fan_in,
                self.initialization,
                param_dtype=self.param_dtype,
                dtype=self.param_dtype,
                name=name,
                **kw,
            )

        act = lambda z: nn.gelu(z, approximate=False)
        hidden, lift, proj = self.hidden_channels, self.lifting_channels, self.projection_channels
        # the pointwise layers' names are the ones Flax gave them when this was one compact
        # chain (creation order): the same names give the same initial weights
        n_lift = 2 if lift else 1
        if stage != "body":
            if lift:
                v = dense(hidden, lift, "Dense_0")(act(dense(lift, v.shape[-1], "Dense_1")(v)))
            else:
                v = dense(hidden, v.shape[-1], "Dense_0")(v)
            if stage == "lift":
                return v
        for layer in range(self.n_layers):
            v = SpectralConv2d(hidden, tuple(self.modes), self.param_dtype)(v) + dense(
                hidden, hidden, f"Dense_{n_lift + layer}", use_bias=False
            )(v)
            if layer < self.n_layers - 1:
                v = act(v)
        if at is not None:
            v = v[..., at[0], at[1], :]
        last = n_lift + self.n_layers
        if proj:
            return dense(self.out_channels, proj, f"Dense_{last}")(
                act(dense(proj, hidden, f"Dense_{last + 1}")(v))
            )
        return dense(self.out_channels, hidden, f"Dense_{last}")(v)
