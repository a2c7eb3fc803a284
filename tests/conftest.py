import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _x64_after_each_test():
    """A run switches x64 to its precision (``precision=auto`` is float32 for the SQP-momentum
    problems); the next test starts from float64 again."""
    yield
    jax.config.update("jax_enable_x64", True)
