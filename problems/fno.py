"""A 2-D Fourier neural operator in Flax (Li et al., ICLR 2021), as neuraloperator 0.3 builds it.

The SQP momentum paper (§5.4) used ``neuralop.models.FNO(n_modes=(16, 16),
hidden_channels=4, in_channels=3, out_channels=1)`` with the library's defaults; this is
that network written in Flax (the PyTorch package is not a dependency). Layout is channels
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
import jax.numpy as jnp

from problems import networks


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
        out = out.at[..., :pos, :cols, :].set(mix(vh[..., :pos, :cols, :],
                                                  weight[:pos, :cols]))
        if neg:
            out = out.at[..., h - neg:, :cols, :].set(mix(vh[..., h - neg:, :cols, :],
                                                          weight[m1 - neg:, :cols]))
        y = jnp.fft.irfft2(out, s=(h, w), axes=(-3, -2))
        return y.astype(v.dtype) + bias


class FNO(nn.Module):
    """Lifting → n_layers Fourier layers → projection (neuraloperator 0.3 ``FNO`` defaults)."""

    modes: tuple[int, int] = (16, 16)
    hidden_channels: int = 4
    n_layers: int = 4
    lifting_channels: int = 256
    projection_channels: int = 256
    out_channels: int = 1
    param_dtype: jnp.dtype = jnp.float64
    initialization: str = "flax"  # pointwise layers: "flax" | "torch" (problems.networks)

    @nn.compact
    def __call__(self, v, at=None):
        """v (..., H, W, C_in) -> (..., H, W, C_out); with ``at = (rows, cols)`` (index
        arrays of equal length P) only the output at those pixels, (..., P, C_out): the
        projection is pointwise, so the other pixels' projections are never computed."""
        def dense(n, fan_in, **kw):  # a pointwise layer with ``fan_in`` input channels
            return networks.dense(n, fan_in, self.initialization, param_dtype=self.param_dtype,
                                  dtype=self.param_dtype, **kw)

        act = lambda z: nn.gelu(z, approximate=False)
        hidden, lift, proj = self.hidden_channels, self.lifting_channels, self.projection_channels
        if lift:
            v = dense(hidden, lift)(act(dense(lift, v.shape[-1])(v)))
        else:
            v = dense(hidden, v.shape[-1])(v)
        for layer in range(self.n_layers):
            v = (SpectralConv2d(hidden, tuple(self.modes), self.param_dtype)(v)
                 + dense(hidden, hidden, use_bias=False)(v))
            if layer < self.n_layers - 1:
                v = act(v)
        if at is not None:
            v = v[..., at[0], at[1], :]
        if proj:
            return dense(self.out_channels, proj)(act(dense(proj, hidden)(v)))
        return dense(self.out_channels, hidden)(v)
