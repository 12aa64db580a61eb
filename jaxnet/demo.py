"""The main demo: `python -m jaxnet.demo` (what `make demo` runs).

Trains 64 instances (64 different disordered 64-node networks, each with its own terminals
and data) on the linear-regression task with coupled learning at p = 1, 0.5, 0.1
(desynchronous) and with gradient descent, all vmapped over instances. Prints a table of
final errors and writes a learning-curve figure to `out/`.

Training runs in segments, each one jit-compiled call, through `jn.run_resumable`: after each
segment the progress is saved to `out/demo_checkpoint.npz`, so an interrupted run resumes
where it stopped.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet as jn

RULES = {
    "coupled, p=1": lambda: jn.rules.coupled_learning(alpha=1.0, eta=1e-3),
    "coupled, p=0.5": lambda: jn.rules.desync(jn.rules.coupled_learning(alpha=1.0, eta=1e-3), 0.5),
    "coupled, p=0.1": lambda: jn.rules.desync(jn.rules.coupled_learning(alpha=1.0, eta=1e-3), 0.1),
    "gradient descent": lambda: jn.rules.gradient_descent(optax.sgd(2.0)),
}


def make_instances(n_instances: int, n_nodes: int, seed: int):
    """Stacked networks and tasks: one disordered network, terminals and data per instance."""
    keys = jax.random.split(jax.random.key(seed), n_instances)
    nets, tasks = [], []
    for key in keys:
        k_net, k_task = jax.random.split(key)
        net = jn.disordered_network(k_net, n_nodes, coordination=4.0)
        nets.append(net)
        tasks.append(jn.regression_task(k_task, net))
    stack = lambda *xs: jnp.stack(xs)  # noqa: E731
    return jax.tree.map(stack, *nets), jax.tree.map(stack, *tasks)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--segments", type=int, default=20, help="checkpoints (and progress-bar ticks)")
    parser.add_argument("--out", default="out")
    parser.add_argument("--fresh", action="store_true", help="delete an existing checkpoint first")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "demo_checkpoint.npz")
    nets, tasks = make_instances(args.instances, args.nodes, seed=0)
    n_edges = nets.senders.shape[-1]
    seg_steps = args.steps // args.segments
    print(f"{args.instances} disordered networks, {args.nodes} nodes / {n_edges} edges each; "
          f"regression y = C x, {tasks.x_train.shape[1]} examples; {args.segments} x {seg_steps} steps")
    if args.fresh and os.path.exists(checkpoint):
        os.remove(checkpoint)
    elif os.path.exists(checkpoint):
        print(f"resuming from {checkpoint} (a checkpoint of another configuration is refused; --fresh)")

    @jax.jit
    def run_segment(k, segment):
        def one(net, task, k0, key):
            record = {}
            for name, make_rule in RULES.items():
                r = jn.train(net, task, make_rule(), k0[name], key=jax.random.fold_in(key, segment),
                             steps=seg_steps, log_every=seg_steps)
                k0 = {**k0, name: r.conductances}
                record[f"{name}/loss"] = r.loss[jnp.array([0, -1])]
                record[f"{name}/test"] = r.test_loss[-1]
            return k0, record

        keys = jax.random.split(jax.random.key(1), args.instances)
        return jax.vmap(one)(nets, tasks, k, keys)

    k0 = {name: jnp.ones((args.instances, n_edges)) for name in RULES}
    start = time.perf_counter()
    _, records = jn.run_resumable(run_segment, k0, args.segments, checkpoint)
    print(f"wall time {time.perf_counter() - start:.1f} s (includes compilation)")
    # loss at step 0, then after each segment: (segments + 1, instances)
    history = {name: np.concatenate([records[f"{name}/loss"][:1, :, 0], records[f"{name}/loss"][:, :, 1]])
               for name in RULES}

    steps = np.arange(args.segments + 1) * seg_steps
    print(f"\n{'rule':<18}{'C/C0 median':>13}{'C/C0 mean':>11}{'test loss':>11}{'< 0.1 C0':>10}")
    for name in RULES:
        ratio = history[name][-1] / history[name][0]
        print(f"{name:<18}{np.median(ratio):>13.4f}{ratio.mean():>11.4f}{records[f'{name}/test'][-1].mean():>11.2e}"
              f"{(ratio < 0.1).mean():>10.0%}")
    figure = os.path.join(args.out, "demo_learning_curves.png")
    plot(steps, history, figure)
    print(f"\nlearning curves: {figure}")


def plot(steps, history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, losses in history.items():
        ratio = np.stack(losses) / np.stack(losses)[0]
        lo, mid, hi = np.percentile(ratio, [25, 50, 75], axis=1)
        ax.plot(steps, mid, label=name)
        ax.fill_between(steps, lo, hi, alpha=0.2)
    ax.set(xlabel="step", ylabel="training loss C / C0 (median, quartiles)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
