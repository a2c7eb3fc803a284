"""Fully connected networks u_θ(z) (Flax linen).

Two initialisations (``initialization``; a problem's ``init`` option):

* ``"flax"``: Flax's ``nn.Dense`` defaults, kernel lecun-normal (truncated normal, variance
  1/fan_in), bias zero. The trSQP-PINN authors' code is JAX/Flax, so its problems use this.
* ``"torch"``: PyTorch's ``nn.Linear`` defaults, which the SQP-momentum authors' code keeps
  (it never re-initialises): kernel kaiming-uniform with a = √5, i.e. U(±1/√fan_in), and
  bias U(±1/√fan_in).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from problems.common.base import check_choice, check_positive_int

# Smooth activations only: the PDE residuals differentiate the network twice in x.
ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "sigmoid": nn.sigmoid,
}


INITS = ("flax", "torch")


def torch_uniform(fan_in: int):
    """U(±1/√fan_in), PyTorch's ``nn.Linear`` default for both kernel and bias
    (``kaiming_uniform_(a=√5)`` has bound gain·√(3/fan_in) with gain √(2/(1 + 5)))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(features: int, fan_in: int, init: str = "flax", **kw) -> nn.Dense:
    """``nn.Dense(features)`` with the ``init`` initialisation of the module docstring."""
    if init == "torch":
        kw = {"kernel_init": torch_uniform(fan_in), "bias_init": torch_uniform(fan_in), **kw}
    return nn.Dense(features, **kw)


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
    initialization: str = "flax"  # "flax" | "torch" (module docstring)

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        kw = {"param_dtype": self.param_dtype, "dtype": self.param_dtype}
        for _ in range(self.depth):
            z = act(dense(self.width, z.shape[-1], self.initialization, **kw)(z))
        return dense(self.out_features, z.shape[-1], self.initialization, **kw)(z)
