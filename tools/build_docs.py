"""Build dbl-kit's docs site into _docs/ from the notebooks (`make docs`).

Why MkDocs (mkdocs-material + mkdocs-jupyter + mkdocstrings-python) rather than nbdev-docs or Sphinx: nbdev-docs
needs Quarto, which no package registry ships (PyPI's quarto-cli downloads it while it installs, Debian has no
package); all three MkDocs packages install from PyPI as pure-Python wheels, are actively maintained, render the
notebooks as they are stored (no execution: the pages show the outputs the notebooks were committed with, and a
build takes seconds), and mkdocstrings reads the exported modules statically (griffe), so the API reference needs
no import of torch and lists exactly each module's `__all__`. Sphinx + myst-nb would do the same with more
configuration (a conf.py, autodoc directives per name, an executed-or-cached notebook store).

What the build does:
1. stages the notebooks into _proc/docs: `#| hide` cells dropped, `#|` directive lines removed, links to other
   notebooks or markdown files rewritten to the pages they become;
2. writes one API page per exported module (`::: dbl_kit.NAME`, every name of its `__all__`) and an index of
   every exported name, with the package's top-level re-exports;
3. builds with mkdocs.yml's settings and a navigation in the notebooks' order (index, guides, library, experiments,
   API), strict: a warning (a broken link, an API name that cannot be found) fails the build.

Run: `python tools/build_docs.py` from the repository root (the Makefile's `docs` target). `--serve` stages, then serves
the site with live reload instead of building it (`mkdocs serve`; run again after changing a notebook).
"""
import argparse, ast, json, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, LIB, STAGE = ROOT / "nbs", ROOT / "dbl_kit", ROOT / "_proc" / "docs"
DIRECTIVE = re.compile(r"^\s*#\|\s*(\w+)")
PLOTLY_JS = "js/plotly.min.js"        # the site's copy of plotly.js, for the stored figures
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
    """A stored plotly figure (`application/vnd.plotly.v1+json`, what JupyterLab renders) as HTML that loads the
    plotly.js copied into the site (`plotly_js`, relative to the page): nbconvert cannot render the JSON alone."""
    data = output.get("data", {})
    if "application/vnd.plotly.v1+json" not in data or "text/html" in data: return output
    import plotly.io as pio
    fig = pio.from_json(json.dumps(data["application/vnd.plotly.v1+json"]))
    html = pio.to_html(fig, full_html=False, include_plotlyjs=plotly_js)
    return {**output, "data": {"text/html": html, "text/plain": data.get("text/plain", "")}}


def stage_notebook(src, dest):
    "Copy a notebook for the site: hidden cells dropped, directive lines removed, relative links rewritten."
    nb = json.loads(src.read_text(encoding="utf-8"))
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
            cell = {**cell, "outputs": [plotly_as_html(o, plotly_js) for o in cell.get("outputs", [])]}
        else:
            lines = [LINK.sub(lambda m: f"]({page_link(m.group(1))})", l) for l in lines]
        cells.append({**cell, "source": lines})
    nb["cells"] = cells
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return title_of(nb, src.stem)


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


def stage():
    "Fill _proc/docs and return mkdocs' navigation."
    shutil.rmtree(STAGE, ignore_errors=True); STAGE.mkdir(parents=True)
    import plotly
    (STAGE / PLOTLY_JS).parent.mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", STAGE / PLOTLY_JS)
    nav = [{stage_notebook(NBS / "index.ipynb", STAGE / "index.ipynb"): "index.ipynb"}]
    guides = [{f"{stage_notebook(NBS / n, STAGE / n)} ({n})": n} for n in ("train.ipynb", "explore.ipynb")
              if (NBS / n).exists()]
    library = [{stage_notebook(p, STAGE / p.name): p.name} for p in sorted(NBS.glob("[0-9][0-9]_*.ipynb"))]
    experiments = [{stage_notebook(p, STAGE / "experiments" / p.name): f"experiments/{p.name}"}
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", action="store_true", help="serve with live reload instead of building _docs/")
    args = ap.parse_args(argv)
    import logging
    from mkdocs.config import load_config
    logging.basicConfig(format="docs: %(levelname)s %(message)s", level=logging.WARNING)
    t0 = time.perf_counter()
    nav, modules = stage()
    cfg = load_config(str(ROOT / "mkdocs.yml"), nav=nav, strict=True)
    if args.serve:
        from mkdocs.commands.serve import serve
        return serve(str(ROOT / "mkdocs.yml"), nav=nav)
    from mkdocs.commands.build import build
    cfg.plugins.on_startup(command="build", dirty=False)
    try: build(cfg)
    finally: cfg.plugins.on_shutdown()
    n_names, n_notebooks = sum(len(v[0]) for v in modules.values()), len(list(STAGE.rglob("*.ipynb")))
    print(f"docs: built {Path(cfg.site_dir).relative_to(ROOT)}/ in {time.perf_counter() - t0:.1f}s: {n_notebooks} notebook "
          f"pages and the API of {len(modules)} modules ({n_names} exported names); open "
          f"{Path(cfg.site_dir).relative_to(ROOT)}/index.html")


if __name__ == "__main__":
    sys.exit(main())
