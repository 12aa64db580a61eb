"""The documentation site: it builds strictly, names every public name, its code runs (at
small sizes), and it renders and searches in a headless browser."""

import functools
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
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
    skipped = [(page, reason) for page in PAGES for _, _, reason in code_blocks(page) if reason]
    assert skipped and all(len(reason) > 10 for _, reason in skipped)


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page, tmp_path, monkeypatch, capsys):
    """Each page's Python blocks run in order in one namespace (as a reader runs them); its
    shell blocks of `jaxnet` commands run through the console script, at small sizes."""
    from jaxnet import cli

    monkeypatch.chdir(tmp_path)
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


def test_site_renders_and_searches_in_a_headless_browser(site):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (Debian) to run the browser check")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def dom(path, budget_ms=15000):
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}",
                               "--dump-dom", base + path], capture_output=True, text=True, timeout=180)
        return done.stdout

    def search(query):
        """Material's shareable search (`?q=`): the query runs when the page loads; a loaded
        machine may need more (virtual) time for the search index."""
        for budget_ms in (15000, 40000, 90000):
            links = re.findall(r"<a\s[^>]*md-search-result__link[^>]*>", dom(f"/?q={query}", budget_ms))
            hits = [re.search(r'href="([^"]*)"', a).group(1) for a in links]
            if hits:
                return hits
        return []

    try:
        home = dom("/")
        assert "<h1" in home and "Ten lines" in home and "md-header" in home  # the theme ran
        api = dom("/api/")
        assert 'id="jaxnet.rules.coupled_learning"' in api and 'id="jaxnet.solve"' in api
        hits = search("coupled_learning")
        assert any("coupled_learning" in h for h in hits), hits
    finally:
        server.shutdown()
