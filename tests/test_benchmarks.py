"""The benchmarks' baselines must compute what jaxnet computes, or their ratios mean nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from benchmarks import baselines, workloads


@pytest.mark.parametrize("solver", baselines.SOLVERS)
def test_baseline_solvers_agree_with_jaxnet(solver, x64):
    net = jn.disordered_network(jax.random.key(0), 80, 4.0)
    k = jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=0.5, maxval=2.0)
    fixed, values = jnp.array([3, 40, 77]), jax.random.normal(jax.random.key(2), (6, 3))
    ours = jn.solve(net, k, fixed, values)
    ref = baselines.Kirchhoff(net.senders, net.receivers, net.n_nodes, np.asarray(fixed)).solve(np.asarray(k), np.asarray(values), solver)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


@pytest.mark.parametrize("rule_name", ["coupled", "gradient"])
def test_training_baselines_reproduce_jaxnet(rule_name):
    net, task = workloads.workload(64)
    rule, make_baseline = workloads.rules()[rule_name]
    assert workloads.check(net, task, rule, make_baseline(net, task), steps=10) < 1e-8


def test_gpu_script_runs_at_small_size(tmp_path):
    """benchmarks/gpu.py must work when a GPU session comes (its device time is short)."""
    from benchmarks import gpu

    results = gpu.main(instances=8, steps=10, out_dir=str(tmp_path))
    assert results["dense_vs_cg_max_rel_diff"] < 1e-3
    assert results["float32_vs_cpu_float64_max_rel_diff"] < 1e-3
    assert results["auto"]["network_steps_per_s"] > 0 and results["W1024"]["network_steps_per_s"] > 0
    assert len(list(tmp_path.glob("gpu-*.json"))) == 1
