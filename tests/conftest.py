import jax
import pytest

# Tests run in float64 unless they ask for float32 explicitly (dtype-parametrized tests do).
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)
