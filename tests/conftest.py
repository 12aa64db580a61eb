import jax
import pytest

# Tests run in float64 unless they ask for float32 explicitly (dtype-parametrized tests do).
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def smoke_reproduction(tmp_path_factory):
    """`jn.reproduce` at smoke scale, once per session: (directory, claims document).

    Shared by the tests of the report, the notebook and the README's command (which find
    the sweeps complete and only redo the analysis).
    """
    import jaxnet as jn

    out = str(tmp_path_factory.mktemp("reproduce") / "paper")
    return out, jn.reproduce(out, scale="smoke", quiet=True)
