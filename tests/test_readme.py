"""The README's code runs (at small sizes), so it cannot go stale."""

import os
import re
import shlex


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
SMALL = ["--set", "sweep.steps=20", "--set", "sweep.log_every=10", "--set", "sweep.networks=2",
         "--set", "network.n_nodes=16"]


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def shrink(code, tmp_path):
    code = code.replace("1024", "4").replace("steps=2000", "steps=20").replace("n_nodes=64", "n_nodes=16")
    code = code.replace('"examples/', f'"{ROOT}/examples/').replace('"out/', f'"{tmp_path}/')
    # the sizes of SMALL, which test_sweep_commands_run gives the same config: one set of programs
    return code.replace('{"sweep.steps": 200}',
                        '{"sweep.steps": 20, "sweep.log_every": 10, "sweep.networks": 2, "network.n_nodes": 16}')


def test_python_blocks_run(tmp_path):
    code = blocks("python")
    assert len(code) >= 3
    namespace = {}
    for block in code:  # they build on each other, as a reader runs them
        exec(compile(shrink(block, tmp_path), "README.md", "exec"), namespace)
    assert os.path.exists(tmp_path / "quick-py" / "curves.png")
    assert os.path.exists(tmp_path / "xor-network.png")


def test_sweep_commands_run(tmp_path, monkeypatch, capsys):
    from jaxnet import cli

    monkeypatch.chdir(ROOT)
    commands = [line.split("#")[0].strip() for block in blocks("bash") for line in block.splitlines()]
    commands = [c for c in commands if c.startswith(("jaxnet sweep", "jaxnet plot"))]  # reproduce: test_reproduce
    assert len(commands) == 4
    for command in commands:
        argv = shlex.split(command.replace("out/", f"{tmp_path}/"))[1:]
        argv += SMALL if argv[0] == "sweep" else []
        assert cli.main(argv) == 0, command
    assert "already complete" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "quick" / "curves-normalized_loss.png")
