"""The explore notebook and the docs site in a real browser: JupyterLab (or the built site) on a loopback port, or the
built site from file:// with the network refused, in headless Chromium driven by Playwright.

The explorer opens a small offline DBL run trained here (an anchor, then a target, as `make demo` trains one):
every cell runs in the page, the plotly figures render and compare anchor with target, branch A can be set to
"(none)" and shows it, and moving the margin slider re-renders the separability figure. Needs /usr/bin/chromium (Debian: apt-get install chromium); Playwright never downloads a
browser here. DBL_EXPLORE_RUN=<run dir> explores that run instead; DBL_SCREENSHOT=<file.png>
saves a screenshot of the explorer.
"""
import contextlib, json, os, re, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not Path(CHROMIUM).exists(),
              reason=f"{CHROMIUM} is absent: install Chromium (Debian: apt-get install chromium) to run the browser test")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def wait_until(what, check, timeout, interval=0.5):
    "Poll `check()` until it returns a truthy value, at most `timeout` seconds; fail naming `what`."
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value: return value
        if time.monotonic() > deadline: pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_notebook(root, run_dir):
    "A copy of nbs/explore.ipynb with run_dir (and a small UMAP sample) injected after the parameters cell."
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    source = load_notebook_node(str(ROOT / "nbs" / "explore.ipynb"))
    assert any("parameters" in c.metadata.get("tags", []) for c in source.cells), \
        "nbs/explore.ipynb has no cell tagged 'parameters' (nbdev-clean drops tags unless [tool.nbdev] allows them)"
    nb = parameterize_notebook(source,
                               {"run_dir": str(run_dir), "umap_images": 40})
    for cell in nb.cells:
        if cell.cell_type == "code": cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / "explore.ipynb")


@pytest.fixture()
def jupyterlab(tmp_path):
    "JupyterLab on a free loopback port with a token, isolated settings, notebook windowing off; killed at the end."
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir(); (home / "config" / "labconfig").mkdir(parents=True)
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"; settings.mkdir(parents=True)
    # every cell stays in the DOM (no virtual scrolling), so every figure renders and can be found
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # no "news" prompt, no update check
    (home / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={home / 'settings'}",
         f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited ({proc.returncode}): {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r: return r.status == 200
        except OSError: return False
    try:
        wait_until("JupyterLab to answer", up, timeout=90)
        yield dict(root=root, base=base, token=token, log=tmp_path / "jupyterlab.log")
    finally:
        # shut the server down through its API (it stops its kernels), then make sure the process group is gone
        try:
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=20)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(timeout=10)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)
        log.close()


NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) for (const o of c.model.outputs.toJSON())
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {status: kernel ? kernel.status : 'none', cells: cells.length,
          done: cells.filter(c => c.model.executionCount !== null).length,
          running: [...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*')),
          errors: errors};
}"""

SEPARABILITY = """() => {
  const plots = [...document.querySelectorAll('.widget-output .js-plotly-plot')]
    .filter(p => p.layout && p.layout.title && String(p.layout.title.text).startsWith('Triplet separability'));
  if (!plots.length) return null;
  const sub = plots[0].layout.title.subtitle;
  return {margin: plots[0].layout.meta.margin, title: plots[0].layout.title.text + ' / ' + (sub ? sub.text : '')};
}"""


def offline_dbl_run(folder):
    """A small offline DBL run (anchor, then target; rel_max) on a small shapes set generated in `folder`: the kind of
    run `make demo` trains, at a size that trains and evaluates in seconds."""
    import dbl_kit
    from dbl_kit.shapes import ensure_shapes
    data = ensure_shapes(folder / "data", n_train=400, n_dev=100, n_test=100)
    return dbl_kit.train(scenario="offline", transfer="rel_max", dataset=str(data), epochs=2, anchor_epochs=2,
                         embed_size=32, word_dim=32, batch_size=64, lr=2e-3, max_violation=False, seed=0, threads=1,
                         progress=False, runs_path=str(folder / "runs")).run_dir


BRANCH_SELECT = """(label) => {
  const box = [...document.querySelectorAll('.widget-dropdown')].find(d => d.querySelector('label')?.textContent === label);
  const s = box && box.querySelector('select');
  return s ? {shown: s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : '', options: [...s.options].map(o => o.text)} : null;
}"""

SEPARABILITY_TRACES = """() => {
  const p = [...document.querySelectorAll('.widget-output .js-plotly-plot')]
    .find(p => p.layout && String(p.layout.title.text).startsWith('Triplet separability'));
  return p ? p.data.map(t => t.name) : null;
}"""


def test_explore_notebook_in_chromium(jupyterlab, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    started = time.monotonic()
    run_dir = os.environ.get("DBL_EXPLORE_RUN") or offline_dbl_run(tmp_path)
    write_notebook(jupyterlab["root"], run_dir)

    with playwright.sync_playwright() as p:
        console = []
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.set_default_timeout(60_000)
            page.goto(f"{jupyterlab['base']}/lab/tree/explore.ipynb?token={jupyterlab['token']}", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.content", timeout=90_000)
            state = lambda: page.evaluate(NOTEBOOK_STATE)
            wait_until("the kernel to start", lambda: (state() or {}).get("status") == "idle", timeout=120)

            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

            def finished():
                s = state() or {"errors": [], "done": -1, "cells": 0}
                if s["errors"]: pytest.fail(f"a cell raised: {s['errors']}")
                return s["done"] == s["cells"] and not s["running"] and s["status"] == "idle"
            wait_until("all cells to run", finished, timeout=420, interval=1)

            # every figure renders: 5 in the explorer's widgets (distances, separability, scatter, history, UMAP),
            # the same 5 again as plain outputs in the Figures section
            counts = []
            def plots_drawn():
                counts.append(n := page.locator(".jp-Notebook .js-plotly-plot").count())
                return n >= 10 and n
            try: n_plots = wait_until("the plotly figures to render", plots_drawn, timeout=120)
            except BaseException:
                print("plotly figures drawn while waiting:", counts[-5:], "titles:", page.evaluate(
                    "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => String(p.layout && p.layout.title.text))"))
                raise
            assert page.locator(".widget-output .js-plotly-plot").count() == 5
            titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => String(p.layout.title.text))")
            for start in ("Distance distributions", "Triplet separability", "Per-query relative distance", "Training curves", "UMAP"):
                assert any(t.startswith(start) for t in titles), (start, titles)
            assert page.locator(".dbl-inspector").count() == 1

            # anchor versus target: the status line names the offline run's branches, the dropdowns show them, the
            # figures draw both
            status = " ".join(page.locator(".jp-Notebook .widget-html").all_inner_texts())
            assert "Scenario offline" in status and "branches anchor, target" in status, status[:400]
            shown_a, shown_b = page.evaluate(BRANCH_SELECT, "branch A"), page.evaluate(BRANCH_SELECT, "branch B")
            assert shown_a["shown"] == "anchor" and "(none)" in shown_a["options"], shown_a
            assert shown_b["shown"] == "target", shown_b
            assert page.evaluate(SEPARABILITY_TRACES) == ["anchor", "target"]
            assert any(t.startswith("Per-query relative distance") for t in titles)
            # the query slider shows no position of its own: its label is the query number
            query = page.locator(".widget-slider", has=page.locator("label", has_text="query")).first
            assert re.fullmatch(r"query \d+", query.locator("label").first.inner_text().strip())
            assert not query.locator(".widget-readout").first.is_visible()

            # branch A to "(none)": the dropdown says so and the figures draw the target alone; then back
            select_a = page.locator(".widget-dropdown", has=page.locator("label", has_text="branch A")).locator("select").first
            select_a.select_option(label="(none)")
            wait_until("the figures to draw the target alone", lambda: page.evaluate(SEPARABILITY_TRACES) == ["target"], timeout=60)
            assert page.evaluate(BRANCH_SELECT, "branch A")["shown"] == "(none)"
            select_a.select_option(label="anchor")
            wait_until("the figures to draw both branches again",
                       lambda: page.evaluate(SEPARABILITY_TRACES) == ["anchor", "target"], timeout=60)
            before = wait_until("the explorer's separability figure", lambda: page.evaluate(SEPARABILITY), timeout=30)

            # drag the margin slider's handle to the right, as a user would
            slider = page.locator(".widget-slider", has=page.locator("label", has_text="margin m")).first
            handle = slider.locator(".noUi-handle").first
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            after = wait_until("the separability figure to follow the slider",
                               lambda: (a := page.evaluate(SEPARABILITY)) and a["margin"] != before["margin"] and a,
                               timeout=60)
            assert after["margin"] > before["margin"] and after["title"] != before["title"]
            readout = slider.locator(".widget-readout").first.inner_text()
            assert abs(float(readout) - after["margin"]) < 1e-6

        finally:
            if os.environ.get("DBL_SCREENSHOT"):     # also on failure: it shows what the page looked like
                with contextlib.suppress(Exception):
                    page.evaluate("() => document.querySelector('.jp-Notebook .jupyter-widgets.widget-vbox')"
                                  ".scrollIntoView({block: 'start'})")
                    page.wait_for_timeout(1000)     # let plotly finish drawing what scrolled into view
                    page.screenshot(path=os.environ["DBL_SCREENSHOT"])
            browser.close()
    print(f"browser test: {n_plots} figures, margin {before['margin']} -> {after['margin']}, "
          f"{time.monotonic() - started:.0f}s")


@pytest.fixture()
def docs_server():
    "The docs site (_docs/, built when stale) served on a free loopback port; stopped at the end."
    import functools, http.server, threading
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")
    from docs_site import ensure_site
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(ensure_site()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True); thread.start()
    try: yield f"http://127.0.0.1:{server.server_address[1]}"
    finally: server.shutdown(); server.server_close()


def test_docs_site_in_chromium(docs_server):
    "The site's index shows the README's text and navigation; a library page and its API page show real content."
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    import ast
    tree = ast.parse((ROOT / "dbl_kit" / "losses.py").read_text())
    boost_doc = next(ast.get_docstring(n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "boost_loss")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{docs_server}/index.html")
            article = page.locator("article").first
            assert "Deep Boosting Learning" in article.inner_text()
            assert page.locator("article .jp-CodeCell").count() >= 1        # the README's code, as notebook cells
            nav = page.locator("nav.md-nav--primary").first.inner_text()
            for entry in ("Library notebooks", "losses", "API", "dbl_kit.trainer"):
                assert entry in nav, (entry, nav[:500])

            # the library notebook: its prose and its exported code
            page.locator("nav.md-nav--primary a[href='09_losses.html']").first.click()
            page.wait_for_url("**/09_losses.html")
            text = page.locator("article").first.inner_text()
            assert "boosting" in text and "def triplet_loss" in text, text[:500]

            # its API page: every entry a heading with the function's docstring under it
            page.goto(f"{docs_server}/api/losses.html#dbl_kit.losses.boost_loss")
            heading = page.locator("[id='dbl_kit.losses.boost_loss']")
            assert heading.is_visible() and "boost_loss" in heading.inner_text()
            body = page.locator("article").first.inner_text()
            assert " ".join(boost_doc.split()[:8]) in " ".join(body.split()), boost_doc[:80]
            shown = page.evaluate("() => [...document.querySelectorAll('article [id^=\"dbl_kit.losses.\"]')].map(e => e.id)")
            assert {"dbl_kit.losses.triplet_loss", "dbl_kit.losses.make_transfer"} <= set(shown)
        finally:
            browser.close()


def test_docs_site_offline_figures_and_formulas():
    """The built site read as a reader opens it, from file:// with no network (every http(s) request is refused and
    recorded): the figures page draws its plotly figures, the losses page's formulas are typeset by the site's own
    MathJax (no TeX source left in the text), and no code box is wider than its column. DBL_DOCS_SCREENSHOT=<dir>
    saves docs_figure.png and docs_math.png there."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")
    from docs_site import ensure_site
    site, shots = ensure_site(), os.environ.get("DBL_DOCS_SCREENSHOT")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            remote, errors = [], []
            page.route(re.compile(r"^https?://"), lambda route: (remote.append(route.request.url), route.abort()))
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto((site / "20_figures.html").as_uri())
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5")
            drawn = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.data.length)")
            assert sum(n > 0 for n in drawn) >= 5, drawn      # (one figure is the "not available" notice, no trace)
            if shots:
                page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
                page.evaluate("() => window.scrollBy(0, -150)")
                page.screenshot(path=str(Path(shots) / "docs_figure.png"))

            page.goto((site / "09_losses.html").as_uri())
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                                   " && document.querySelectorAll('mjx-container').length > 0")
            page.evaluate("() => MathJax.startup.promise")
            n_math = page.locator("article mjx-container").count()
            prose = page.evaluate("() => [...document.querySelectorAll('article .jp-RenderedMarkdown')]"
                                  ".map(e => e.innerText).join('\\n')")
            assert n_math >= 10, n_math
            for tex in ("$$", "\\mathcal", "\\max", "\\ne"):
                assert tex not in prose, (tex, prose[prose.find(tex) - 80:prose.find(tex) + 80])
            assert not page.locator("mjx-merror").count(), "MathJax could not typeset a formula"
            # long lines wrap: no notebook code box scrolls sideways
            wide = page.evaluate("() => [...document.querySelectorAll('article .highlight-ipynb pre')]"
                                 ".filter(p => p.scrollWidth > p.clientWidth + 1).length")
            assert wide == 0, f"{wide} code boxes wider than their column"
            if shots:
                page.evaluate("() => { document.getElementById('triplet-ranking-loss-vse').scrollIntoView();"
                              " window.scrollBy(0, -400); }")
                page.screenshot(path=str(Path(shots) / "docs_math.png"))
            assert not remote, f"the site asked the network for {remote[:5]}"
            assert not [e for e in errors if "search_index" not in e], errors
        finally:
            browser.close()
