"""Build dbl-kit's docs site into _docs/ from the notebooks (`make docs`), executing the library notebooks first.

Why MkDocs (mkdocs-material + mkdocs-jupyter + mkdocstrings-python) rather than nbdev-docs or Sphinx: nbdev-docs
needs Quarto, which no package registry ships (PyPI's quarto-cli downloads it while it installs, Debian has no
package); all three MkDocs packages install from PyPI as pure-Python wheels, are actively maintained, and
mkdocstrings reads the exported modules statically (griffe), so the API reference needs no import of torch and lists
exactly each module's `__all__`. Sphinx + myst-nb would do the same with more configuration (a conf.py, autodoc
directives per name, an executed-or-cached notebook store).

What the build does:
1. executes the notebooks of nbs/ (index and the library notebooks; not the ones `--skip` names, by default the
   Makefile's NBTEST_SKIP: train.ipynb and explore.ipynb, which tests/test_notebooks.py and tests/test_browser.py
   run with papermill and in JupyterLab) exactly as nbdev-test
   does (nbdev's execnb shell, in nbs/, IN_TEST=1, the cells flagged with the config's `tst_flags` or `eval: false`
   left out, the config's `cell_timeout`), `--jobs` at a time, into _proc/exec/: the committed notebooks stay
   clean, and the pages show the figures (plotly), tables and printed results. A cell that raises fails the build
   with its traceback: this execution *is* the notebook test (`make nbtest` runs it alone, `--execute-only`). An
   executed copy is reused while its notebook, the library's modules and the project settings are unchanged
   (`--fresh` runs every notebook again). The experiment notebooks (nbs/experiments/) are not executed: they train
   for hours, and their pages show the outputs they were committed with, read from their committed CSVs;
2. stages the notebooks into _proc/docs: `#| hide` cells dropped, `#|` directive lines removed, links to other
   notebooks or markdown files rewritten to the pages they become, plotly figures (their JSON, what JupyterLab
   renders) turned into HTML that loads the site's own copy of plotly.js;
3. writes one API page per exported module (`::: dbl_kit.NAME`, every name of its `__all__`) and an index of
   every exported name, with the package's top-level re-exports;
4. copies the site's assets: plotly.js, MathJax 3 (tex-svg-full.js from the django-static-mathjax package, one
   file with no fonts to load: formulas are typeset offline, from file://) with its settings, and the site's CSS
   (tools/docs_assets/);
5. builds with mkdocs.yml's settings and a navigation in the notebooks' order (index, guides, library, experiments,
   API), strict: a warning (a broken link, an API name that cannot be found) fails the build. mkdocs.yml's hooks
   (tools/docs_hooks.py) move nbconvert's stylesheet, inline in every notebook page, into one shared file. The
   notebook pages are converted beforehand, `--jobs` at a time, into mkdocs-jupyter's cache (`convert_pages_ahead`):
   MkDocs itself renders one page at a time.

Run: `python tools/build_docs.py` from the repository root (the Makefile's `docs` target). `--no-execute` renders
the notebooks as committed (seconds; no outputs on the library pages). `--serve` stages, then serves the site with
live reload instead of building it (`mkdocs serve`; run again after changing a notebook).
"""
import argparse, ast, hashlib, json, multiprocessing, os, re, shutil, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, LIB, STAGE = ROOT / "nbs", ROOT / "dbl_kit", ROOT / "_proc" / "docs"
EXEC = ROOT / "_proc" / "exec"        # the executed copies of the notebooks, each with the key of what it ran from
ASSETS = ROOT / "tools" / "docs_assets"
DIRECTIVE = re.compile(r"^\s*#\|\s*(\w+)")
PLOTLY_JS = "js/plotly.min.js"        # the site's copy of plotly.js, for the figures
MATHJAX_JS = "js/mathjax/tex-svg-full.js"    # the site's copy of MathJax 3 (mkdocs.yml's extra_javascript)
NBTEST_SKIP = r"^(train|explore)\.ipynb$|^[_.]"   # the Makefile's NBTEST_SKIP: notebooks of nbs/ not executed
EXEC_FORMAT = "1"    # part of every executed copy's key: bump it when what an execution writes changes
WIDGET_NOTE = ("<p><em>An interactive widget (ipywidgets) is shown here when the notebook runs in Jupyter; "
               "a static page has no kernel to drive it.</em></p>")
LINK = re.compile(r"\]\(((?!https?:|mailto:|#)[^)\s]+?)\)")


def title_of(nb, default):
    "The notebook's first `# ` heading (nbdev's title convention) as plain text, else `default`."
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "): return line[2:].replace("`", "").strip()
    return default


def page_link(target):
    "Where a relative link of a notebook points on the site: notebooks and markdown files become .html pages."
    path, _, anchor = target.partition("#")
    if path.endswith(".ipynb"): path = path[:-len(".ipynb")] + ".html"
    elif path.endswith("README.md"): path = path[:-len("README.md")] + "index.html"
    elif path.endswith(".md"): path = path[:-len(".md")] + ".html"
    return path + ("#" + anchor if anchor else "")


def plotly_as_html(output, plotly_js):
    """A plotly figure output (`application/vnd.plotly.v1+json`, what JupyterLab renders and what the executed
    notebooks hold) as HTML for the page: nbconvert cannot render the JSON alone. `plotly_js` is the site's
    plotly.js relative to the page, loaded by the page's first figure (None: already loaded)."""
    data = output.get("data", {})
    if "application/vnd.plotly.v1+json" not in data or "text/html" in data: return output
    import plotly.io as pio
    fig = pio.from_json(json.dumps(data["application/vnd.plotly.v1+json"]))
    html = pio.to_html(fig, full_html=False, include_plotlyjs=plotly_js or False)
    return {**output, "data": {"text/html": html, "text/plain": data.get("text/plain", "")}}


def stage_notebook(src, dest, executed=None):
    """Copy a notebook for the site: hidden cells dropped, directive lines removed, relative links rewritten, figures
    as HTML. `executed`: its executed copy (_proc/exec), whose outputs the page shows; else the outputs of `src`."""
    nb = json.loads((executed or src).read_text(encoding="utf-8"))
    plotly_js = "../" * (len(dest.relative_to(STAGE).parts) - 1) + PLOTLY_JS
    cells = []
    for cell in nb["cells"]:
        lines = "".join(cell["source"]).splitlines(True)
        if cell["cell_type"] == "raw" and lines and lines[0].strip() == "---": continue     # nbdev front matter
        directives = {m.group(1) for l in lines if (m := DIRECTIVE.match(l))}
        if "hide" in directives: continue
        if cell["cell_type"] == "code":
            lines = [l for l in lines if not DIRECTIVE.match(l)]
            if not "".join(lines).strip(): continue
            outputs = []
            for o in cell.get("outputs", []):
                if o.get("output_type") in ("execute_result", "display_data") and not o.get("data"): continue
                if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):    # no kernel behind the page
                    o = {**o, "data": {"text/html": WIDGET_NOTE}}
                html = plotly_as_html(o, plotly_js)
                if html is not o: plotly_js = None        # the page's first figure loads plotly.js for all
                outputs.append(html)
            meta = {k: v for k, v in cell.get("metadata", {}).items() if k != "execution"}   # execnb's timings
            cell = {**cell, "metadata": meta, "outputs": outputs}
        else:
            lines = [LINK.sub(lambda m: f"]({page_link(m.group(1))})", l) for l in lines]
        cells.append({**cell, "source": lines})
    nb["cells"] = cells
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return title_of(nb, src.stem)


def to_execute(skip):
    "The notebooks of nbs/ the build executes: those whose name `skip` (a regex, searched) does not match."
    return [p for p in sorted(NBS.glob("*.ipynb")) if not re.search(skip, p.name)]


def exec_key(nb):
    "What an executed copy of `nb` ran from: the notebook, every module of the library, the project's settings."
    h = hashlib.sha256(EXEC_FORMAT.encode())
    for p in [nb, *sorted(LIB.glob("*.py")), ROOT / "pyproject.toml", ROOT / "settings.ini"]:
        if p.exists(): h.update(f"{p.relative_to(ROOT)}\0".encode() + p.read_bytes() + b"\0")
    return h.hexdigest()


def execute_one(src, dest, key, timeout):
    """Execute the notebook `src` as nbdev-test does (nbdev.test.test_nb: execnb's shell in the notebook's folder,
    IN_TEST=1, the cells the config's `tst_flags` or `eval: false` mark left out) and write it, with its outputs, to
    `dest` (and `key` beside it). Runs in a worker process of its own. Returns (name, seconds, traceback or None)."""
    from execnb.shell import CaptureShell
    from fastcore.nbio import write_nb
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    import plotly.io as pio
    pio.renderers.default = "plotly_mimetype"      # figures as their JSON, turned into HTML by stage_notebook
    t0 = time.perf_counter()
    cfg = get_config()
    skip_flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    nb = NBProcessor(src, rm_directives=False, process=True).nb
    shell = CaptureShell(src, profile=bool(cfg.get("exec_profile")))
    try:
        with working_directory(src.parent):
            shell.run_all(nb, exc_stop=True, preproc=_skip_cell(nb, skip_flags), cell_timeout=timeout or None)
    except BaseException:
        return src.name, time.perf_counter() - t0, shell.prettytb(fname=src) or traceback.format_exc()
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dest.with_suffix(".tmp")); dest.with_suffix(".tmp").replace(dest)
    dest.with_suffix(".key").write_text(key)
    return src.name, time.perf_counter() - t0, None


def _child(conn, args, threads):
    "A worker process: the settings nbdev-test gives a notebook, torch's threads split between workers; one notebook."
    os.environ["IN_TEST"] = "1"
    sys.path.insert(0, str(ROOT))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"): os.environ.setdefault(var, str(threads))
    try:
        import torch; torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    except Exception: pass
    conn.send(execute_one(*args)); conn.close()


# Seconds the longest notebooks take on 2 cores, for a build with no timings of its own (a fresh clone): started first,
# they no longer run last while the other worker idles (index.ipynb trains the README's demo run).
KNOWN_LONG = {"index.ipynb": 50, "20_figures.ipynb": 40, "17_evaluation.ipynb": 16, "24_experiments.ipynb": 10,
              "16_validate.ipynb": 8}


def execute(notebooks, jobs=2, fresh=False):
    """Execute `notebooks` into EXEC, `jobs` at a time, each in a process of its own forked from this one (torch and
    the library imported once, here), the slowest of the last build first. Returns {notebook: its executed copy}
    and {notebook: traceback} of the failures."""
    from multiprocessing.connection import wait
    from nbdev.config import get_config
    timeout = get_config().get("cell_timeout", 600)
    timings_file = EXEC / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    done, todo = {}, []
    for nb in notebooks:
        dest, key = EXEC / nb.relative_to(NBS), exec_key(nb)
        if not fresh and dest.exists() and dest.with_suffix(".key").exists() and dest.with_suffix(".key").read_text() == key:
            done[nb] = dest
        else: todo.append((nb, dest, key, timeout))
    if done: print(f"docs: {len(done)} notebooks unchanged since they last ran: their outputs are reused")
    if not todo: return done, {}
    print(f"docs: executing {len(todo)} notebooks, {jobs} at a time", flush=True)
    # longest first (new ones before all, those known to be long first among them): the shortest build
    todo.sort(key=lambda a: -timings.get(a[0].name, 1e9 + KNOWN_LONG.get(a[0].name, 0)))
    threads = max(1, (os.cpu_count() or 2) // jobs)
    os.environ["IN_TEST"] = "1"
    # what every notebook imports, imported once here, before the workers fork: each starts in a fraction of a second
    # (a module that fails to import here fails the notebooks that import it, each with its own traceback)
    import importlib
    for mod in ["execnb.shell", "nbdev.test", "nbformat", "plotly.io._renderers", "plotly.graph_objects", "pandas", "torch", "dbl_kit",
                *[f"dbl_kit.{p.stem}" for p in sorted(LIB.glob("*.py")) if not p.stem.startswith("_")]]:
        try: importlib.import_module(mod)
        except Exception: pass
    ctx, running, failed = multiprocessing.get_context("fork"), {}, {}
    while todo or running:
        while todo and len(running) < jobs:
            args = todo.pop(0)
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(send, args, threads)); proc.start(); send.close()
            running[receive] = (proc, args[0])
        for receive in wait(list(running)):
            proc, nb = running.pop(receive)
            try: name, secs, error = receive.recv()
            except EOFError: name, secs, error = nb.name, 0, f"the process executing {nb.name} died (exit code {proc.exitcode})"
            proc.join()
            timings[name] = round(secs, 1)
            if error:
                failed[nb] = error
                print(f"docs: FAILED {name} ({secs:.0f}s)\n{error}", file=sys.stderr, flush=True)
            else:
                done[nb] = EXEC / name
                print(f"docs: executed {name} in {secs:.1f}s", flush=True)
    timings_file.parent.mkdir(parents=True, exist_ok=True)
    timings_file.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    return done, failed


def exported_names(py):
    "The module's `__all__` read from its source (no import), with the notebook it is exported from."
    tree = ast.parse(py.read_text(encoding="utf-8"))
    names = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", None) == "__all__" for t in n.targets)), None)
    m = re.search(r"File to edit: \.\./nbs/(\S+?\.ipynb)", py.read_text(encoding="utf-8"))
    return names, (m.group(1) if m else None), ast.get_docstring(tree) or ""


def top_level_exports():
    "`(module, name)` for every name the package's __init__ imports from its modules (`from .core import KitError`)."
    tree = ast.parse((LIB / "__init__.py").read_text(encoding="utf-8"))
    return [(n.module, a.name) for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module
            for a in n.names]


def summary(doc):
    "A module docstring's first paragraph."
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def stage_api():
    "One page per module with a non-empty `__all__`, and api/index.md listing every exported name. Returns the nav."
    modules = {}
    for py in sorted(LIB.glob("*.py")):
        if py.name.startswith("_"): continue
        names, notebook, doc = exported_names(py)
        if names: modules[py.stem] = (names, notebook, doc)
    api = STAGE / "api"; api.mkdir(parents=True)
    for mod, (names, notebook, doc) in modules.items():
        src = f"Written in the notebook [{notebook}](../{notebook}).\n\n" if notebook else ""
        (api / f"{mod}.md").write_text(f"# dbl_kit.{mod}\n\n{src}::: dbl_kit.{mod}\n", encoding="utf-8")
    rows = ["# API reference", "",
            "Every name each module exports (its `__all__`), with the notebook that writes it.", "",
            "| module | what it holds | exported names |", "| --- | --- | --- |"]
    for mod, (names, notebook, doc) in modules.items():
        links = ", ".join(f"[`{n}`]({mod}.md#dbl_kit.{mod}.{n})" for n in names)
        rows.append(f"| [`dbl_kit.{mod}`]({mod}.md) | {summary(doc).replace('|', '/')} | {links} |")
    top = [f"[`{name}`]({mod}.md#dbl_kit.{mod}.{name})" if name in modules.get(mod, ((),))[0] else f"`{name}`"
           for mod, name in top_level_exports()]
    rows += ["", "## The package's top level", "",
             "`import dbl_kit` re-exports these names (`dbl_kit.train(...)`); each is documented in its module: "
             + ", ".join(top) + "."]
    (api / "index.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [{"API reference": "api/index.md"}] + [{f"dbl_kit.{m}": f"api/{m}.md"} for m in modules], modules


def copy_assets():
    "plotly.js, MathJax 3 and the site's own CSS/JS (tools/docs_assets) into the staged site."
    import plotly
    (STAGE / PLOTLY_JS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", STAGE / PLOTLY_JS)
    try:
        import mathjax       # the django-static-mathjax package (the `docs` extra): MathJax's release files
    except ImportError:
        sys.exit("docs: MathJax is missing: pip install -e '.[docs]' (the django-static-mathjax package)")
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    (STAGE / MATHJAX_JS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(es5 / Path(MATHJAX_JS).name, STAGE / MATHJAX_JS)
    shutil.copy(es5.parent / "LICENSE", (STAGE / MATHJAX_JS).parent / "LICENSE")
    for asset in sorted(ASSETS.iterdir()):
        folder = {".js": "js", ".css": "css"}.get(asset.suffix)
        if folder: (STAGE / folder).mkdir(exist_ok=True); shutil.copy(asset, STAGE / folder / asset.name)


def stage(executed=None):
    "Fill _proc/docs and return mkdocs' navigation. `executed`: {notebook: its executed copy}, shown with outputs."
    executed = executed or {}
    shutil.rmtree(STAGE, ignore_errors=True); STAGE.mkdir(parents=True)
    copy_assets()
    page = lambda src, dest: stage_notebook(src, dest, executed.get(src))
    nav = [{page(NBS / "index.ipynb", STAGE / "index.ipynb"): "index.ipynb"}]
    guides = [{f"{page(NBS / n, STAGE / n)} ({n})": n} for n in ("train.ipynb", "explore.ipynb")
              if (NBS / n).exists()]
    library = [{page(p, STAGE / p.name): p.name} for p in sorted(NBS.glob("[0-9][0-9]_*.ipynb"))]
    experiments = [{page(p, STAGE / "experiments" / p.name): f"experiments/{p.name}"}
                   for p in sorted((NBS / "experiments").glob("*.ipynb"))]
    if (ROOT / "data" / "README.md").exists():
        (STAGE / "data").mkdir(); shutil.copy(ROOT / "data" / "README.md", STAGE / "data" / "index.md")
    for name in ("CHANGELOG.md", "CITATION.cff"):      # the README links both; the .cff is served as a file
        if (ROOT / name).exists(): shutil.copy(ROOT / name, STAGE / name)
    api, modules = stage_api()
    nav += [{"Guides": guides}, {"Library notebooks": library}, {"Experiments": experiments}, {"API": api}]
    if (STAGE / "data").exists(): nav.append({"Datasets": "data/index.md"})
    if (STAGE / "CHANGELOG.md").exists(): nav.append({"Changelog": "CHANGELOG.md"})
    return nav, modules


def _convert_page(args):
    "One notebook page into mkdocs-jupyter's cache, as its `on_pre_page` would convert it (in a pool worker)."
    from mkdocs_jupyter import convert, plugin as mj
    path, conf, cache_path = args
    body = convert.nb2html(path, execute=False, **{k: conf[k] for k in PAGE_OPTIONS})
    toc_tokens, title = mj._get_nb_toc_tokens(path, conf["toc_depth"])
    with atomic_text(cache_path) as tmp:
        tmp.write_text(json.dumps({"content": body, "toc_tokens": toc_tokens, "title": title}), encoding="utf-8")


# mkdocs-jupyter's page options that nb2html takes (its on_pre_page passes them from the plugin's config)
PAGE_OPTIONS = ("kernel_name", "theme", "allow_errors", "show_input", "no_input", "no_prompt", "remove_tag_config",
                "highlight_extra_classes", "include_requirejs", "custom_mathjax_url")


class atomic_text:
    "A temporary path beside `dest`, renamed onto it when the block ends without an error."
    def __init__(self, dest): self.dest = Path(dest); self.tmp = self.dest.with_name(f".{self.dest.name}.{os.getpid()}.tmp")
    def __enter__(self): self.dest.parent.mkdir(parents=True, exist_ok=True); return self.tmp
    def __exit__(self, kind, *_):
        if kind is None: os.replace(self.tmp, self.dest)
        else: self.tmp.unlink(missing_ok=True)


def convert_pages_ahead(cfg, jobs):
    """MkDocs renders pages one at a time, and mkdocs-jupyter converts each notebook page with nbconvert (about a
    second each, most of a fresh build). Convert the pages its cache lacks here first, `jobs` at a time, into that
    cache, which the build then reads. This uses mkdocs-jupyter's cache key and entry (`_compute_cache_key`,
    `_get_cache_path`, the entry `on_pre_page` writes, as of 0.25); should they change, the keys no longer match and
    the build converts each page itself, as without this step. Returns the number of pages converted here."""
    try:
        from mkdocs_jupyter import plugin as mj
        conf = cfg.plugins["mkdocs-jupyter"].config
        if conf["execute"] or not conf["cache"]: return 0
        todo = []
        for nb in sorted(STAGE.rglob("*.ipynb")):
            path = mj._get_cache_path(conf["cache_dir"], mj._compute_cache_key(str(nb), conf, False))
            if not path.exists(): todo.append((str(nb), dict(conf), str(path)))
    except (ImportError, AttributeError, KeyError, TypeError) as e:
        print(f"docs: pages converted by mkdocs one at a time (mkdocs-jupyter's cache is not the one known here: {e!r})")
        return 0
    if todo:
        with multiprocessing.get_context("fork").Pool(max(1, jobs)) as pool: pool.map(_convert_page, todo, chunksize=1)
    return len(todo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", action="store_true", help="serve with live reload instead of building _docs/")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time (default 2)")
    ap.add_argument("--skip", default=NBTEST_SKIP, metavar="REGEX",
                    help=f"notebooks of nbs/ not executed, by name (default: {NBTEST_SKIP}, the Makefile's NBTEST_SKIP)")
    ap.add_argument("--fresh", action="store_true", help="execute every notebook, reusing no earlier execution")
    ap.add_argument("--no-execute", action="store_true", help="render the notebooks as committed (no outputs)")
    ap.add_argument("--execute-only", action="store_true", help="execute the notebooks (the notebook test), no site")
    ap.add_argument("--keep-going", action="store_true",
                    help="build the site even when a notebook fails (its page without outputs); the exit status is 1")
    args = ap.parse_args(argv)
    import logging
    logging.basicConfig(format="docs: %(levelname)s %(message)s", level=logging.WARNING)
    t0 = time.perf_counter()
    executed, failed = ({}, {}) if args.no_execute else execute(to_execute(args.skip), args.jobs, args.fresh)
    t_exec = time.perf_counter() - t0
    if failed:
        print(f"docs: {len(failed)} notebooks raised (tracebacks above): " + ", ".join(p.name for p in failed),
              file=sys.stderr)
        if not args.keep_going: return 1
    if args.execute_only:
        print(f"docs: {len(executed)} notebooks executed without error in {t_exec:.1f}s")
        return 0
    from mkdocs.config import load_config
    nav, modules = stage(executed)
    cfg = load_config(str(ROOT / "mkdocs.yml"), nav=nav, strict=True)
    if not args.serve: convert_pages_ahead(cfg, args.jobs)
    if args.serve:
        from mkdocs.commands.serve import serve
        return serve(str(ROOT / "mkdocs.yml"), nav=nav)
    from mkdocs.commands.build import build
    cfg.plugins.on_startup(command="build", dirty=False)
    try: build(cfg)
    finally: cfg.plugins.on_shutdown()
    n_names, n_notebooks = sum(len(v[0]) for v in modules.values()), len(list(STAGE.rglob("*.ipynb")))
    print(f"docs: built {Path(cfg.site_dir).relative_to(ROOT)}/ in {time.perf_counter() - t0:.1f}s ({t_exec:.1f}s "
          f"executing notebooks): {n_notebooks} notebook pages ({len(executed)} with fresh outputs) and the API of "
          f"{len(modules)} modules ({n_names} exported names); open {Path(cfg.site_dir).relative_to(ROOT)}/index.html")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
