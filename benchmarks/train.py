"""Training throughput: full-batch steps/s, jaxnet against NumPy in the same process.

Workload (as in the public coupled-learning codes): 8x8 square lattice, 20 examples, 2 inputs +
1 ground, 2 outputs, conductances starting at 1, eta = 1e-3, float32 for jaxnet. For one
network and for 256 and 1024 vmapped instances, coupled learning and gradient descent,
against the NumPy baseline of the same full-batch algorithm (dense Cholesky; the baseline
loops over instances, so its network-steps/s is that of one network). Each jaxnet run is
first checked to give the baseline's conductances (float64) after 20 steps.
Run: `python -m benchmarks.train` (`python -m benchmarks` runs this and more).
"""

from __future__ import annotations

from .workloads import check, jaxnet_rate, numpy_rate, rules, workload


def run(n_nodes=64, instances=(1, 256, 1024), steps=200, method="auto"):
    net, task = workload(n_nodes)
    rows = []
    for name, (rule, make_baseline) in rules().items():
        err = check(net, task, rule, make_baseline(net, task))
        base = numpy_rate(lambda: make_baseline(net, task), net, max(5, steps // 10))
        for b in instances:
            compile_s, rate = jaxnet_rate(net, task, rule, b, steps, method)
            rows.append(dict(n=n_nodes, rule=name, instances=b, compile_s=compile_s,
                             jaxnet_network_steps_per_s=rate, baseline_steps_per_s=base,
                             speedup=rate / base, check_rel_err=err))
    return rows


def report(rows):
    print(f"{'n':>6}{'rule':>10}{'instances':>11}{'compile s':>11}{'jaxnet net-steps/s':>20}{'NumPy steps/s':>15}{'ratio':>9}")
    for r in rows:
        print(f"{r['n']:>6}{r['rule']:>10}{r['instances']:>11}{r['compile_s']:>11.2f}"
              f"{r['jaxnet_network_steps_per_s']:>20.0f}{r['baseline_steps_per_s']:>15.0f}{r['speedup']:>9.1f}")


if __name__ == "__main__":
    report(run())
