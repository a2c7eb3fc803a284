"""Fully connected networks u_θ(z) (Flax linen), with Flax's default initialisation."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from problems.base import check_choice, check_positive_int

# Smooth activations only: the PDE residuals differentiate the network twice in x.
ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "sigmoid": nn.sigmoid,
}


def validate_network(depth, width, activation, prefix: str) -> None:
    check_positive_int(depth, f"{prefix}.depth")
    check_positive_int(width, f"{prefix}.width")
    check_choice(activation, f"{prefix}.activation", list(ACTIVATIONS))


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, activation, linear output layer.

    The trSQP-PINN network is ``MLP(depth=4, width=50, activation="tanh")``: with a
    2-d input (x, t) and a scalar output it has n = 7851 parameters.
    """

    depth: int
    width: int
    activation: str = "tanh"
    out_features: int = 1
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        for _ in range(self.depth):
            z = act(nn.Dense(self.width, param_dtype=self.param_dtype, dtype=self.param_dtype)(z))
        return nn.Dense(self.out_features, param_dtype=self.param_dtype, dtype=self.param_dtype)(z)
