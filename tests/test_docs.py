"""The documentation site: it builds strictly, names every public name, its code runs (at
small sizes), and it renders and searches in a headless browser."""

import functools
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import types

import pytest

import jaxnet as jn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))
SKIP = re.compile(r"<!-- docs-test: skip \((.+?)\) -->\s*$")
SMALL = ["--set", "sweep.steps=20", "--set", "sweep.log_every=10", "--set", "sweep.networks=2",
         "--set", "network.n_nodes=16"]


def code_blocks(page):
    """`(language, code, skip reason or None)` for each fenced block of a page, in order."""
    text = open(os.path.join(DOCS, page), encoding="utf-8").read()
    out = []
    for match in re.finditer(r"```(\w+)\n(.*?)```", text, re.S):
        before = text[: match.start()].rstrip("\n").splitlines()
        skip = SKIP.match(before[-1]) if before else None
        out.append((match.group(1), match.group(2), skip.group(1) if skip else None))
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`make docs`'s build (`mkdocs build --strict`), into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_site_builds_strictly_with_every_page(site):
    for page in PAGES:
        name = "index.html" if page == "index.md" else os.path.join(page[:-3], "index.html")
        assert (site / name).exists(), page


def test_api_reference_names_every_public_name():
    api = open(os.path.join(DOCS, "api.md"), encoding="utf-8").read()
    for module, prefix in ((jn, "jaxnet"), (jn.rules, "jaxnet.rules")):
        public = [n for n in dir(module) if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)]
        missing = [n for n in public if f"::: {prefix}.{n}\n" not in api]
        assert not missing, f"docs/api.md lacks {missing}"


def test_skipped_blocks_say_why():
    """A skipped block says why; one skipped as the README's is the README's, verbatim (and
    tests/test_readme.py runs it)."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    skipped = [(page, code, reason) for page in PAGES for _, code, reason in code_blocks(page) if reason]
    assert skipped and all(len(reason) > 10 for _, _, reason in skipped)
    for page, code, reason in skipped:
        if "README" in reason:
            assert f"```python\n{code}```" in readme or f"```bash\n{code}```" in readme, page


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page, tmp_path, monkeypatch, capsys):
    """Each page's Python blocks run in order in one namespace (as a reader runs them); its
    shell blocks of `jaxnet` commands run through the console script, at small sizes."""
    from jaxnet import cli
    from jaxnet.sweep import _registry

    monkeypatch.chdir(tmp_path)
    for section in _registry.KINDS:  # the kinds a page registers stay on its page
        monkeypatch.setitem(_registry.KINDS, section, dict(_registry.KINDS[section]))
    namespace = {}
    for language, code, skip in code_blocks(page):
        if skip:
            continue
        code = code.replace('"examples/', f'"{ROOT}/examples/')
        if language == "python":
            exec(compile(code, page, "exec"), namespace)
        elif language == "bash":
            for line in code.splitlines():
                command = line.split("#")[0].strip()
                assert command.startswith("jaxnet "), f"{page}: an unmarked shell line that no test runs: {line!r}"
                argv = shlex.split(command.replace("examples/", f"{ROOT}/examples/"))[1:]
                assert cli.main(argv + (SMALL if argv[0] == "sweep" else [])) == 0, command
        else:
            raise AssertionError(f"{page}: a {language} block that no test runs; mark it skipped, with a reason")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
    JSON messages ending in NUL, commands on fd 3, replies on fd 4), so a check can wait, in
    real time, for what the page's scripts (and the search's web worker) do."""

    def __init__(self, executable):
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        # posix_spawn places the pipe ends at the child's fds 3 and 4 without running Python
        # in a forked child (JAX's threads make fork unsafe).
        self.pid = os.posix_spawn(
            executable, [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                         "about:blank"], os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, to_child, 3), (os.POSIX_SPAWN_DUP2, from_child, 4),
                          (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                          (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
        os.close(to_child)
        os.close(from_child)
        self._next, self._buffer = 0, b""

    def command(self, method, session=None, **params):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:  # replies and events interleave; keep the reply to this command
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_child, 1 << 16)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url):
        target = self.command("Target.createTarget", url=url)["targetId"]
        return self.command("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def wait_for(self, session, expression, seconds=90):
        """The value of a JavaScript `expression` once it is truthy (or the last one after `seconds`)."""
        deadline, value = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            value = self.command("Runtime.evaluate", session, expression=expression, returnByValue=True)["result"].get("value")
            if value:
                return value
            time.sleep(0.25)
        return value

    def close(self):
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self._to_child)
        os.close(self._from_child)


def test_site_renders_and_searches_in_a_headless_browser(site):
    executable = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if executable is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (Debian) to run the browser check")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    browser = Browser(executable)
    try:
        home = browser.open(base + "/")
        title = browser.wait_for(home, "document.querySelector('.md-header') && document.querySelector('h1').textContent")
        assert title and "jaxnet" in title
        api = browser.open(base + "/api/")
        assert browser.wait_for(api, "!!document.getElementById('jaxnet.rules.coupled_learning') && "
                                     "!!document.getElementById('jaxnet.solve')")
        # Material's shareable search: `?q=` runs the query once its web worker has the index.
        search = browser.open(base + "/?q=coupled_learning")
        hits = browser.wait_for(search, "Array.from(document.querySelectorAll('.md-search-result__link'))"
                                        ".map(a => a.href).join(' ')")
        assert hits and "coupled_learning" in hits, hits
    finally:
        browser.close()
        server.shutdown()
