"""The docs site (`make docs` -> _docs/): every exported name has its entry in the API reference, every notebook
has its page, and no link inside the site points to a file the site lacks; the library notebooks' pages show the
outputs of their execution (figures, tables, printed results), the site carries its own MathJax and plotly.js and
loads nothing from the network, and every formula sits where MathJax typesets it.

The names come from the modules' source (`__all__` read with ast), the pages from nbs/, independently of
tools/build_docs.py. The site is built here when _docs/ is missing or older than a notebook or module (make test
builds it first, in the `docs` target).
"""
import ast, html, html.parser, json, re, sys
from urllib.parse import unquote, urlsplit

import pytest

from docs_site import ROOT, ensure_site

sys.path.insert(0, str(ROOT / "tools"))
import build_docs  # noqa: E402   the build's own list of executed notebooks and where it keeps their executed copies

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site():
    return ensure_site()


def module_all(py):
    "A module's `__all__` from its source."
    for node in ast.parse(py.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


class Links(html.parser.HTMLParser):
    "Collects the ids and the relative href/src targets of one page."
    def __init__(self):
        super().__init__(); self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        for key in ("href", "src"):
            v = a.get(key)
            if v and not urlsplit(v).scheme and not v.startswith(("//", "#", "data:")): self.links.append(v)


def parse(page):
    p = Links(); p.feed(page.read_text(encoding="utf-8")); return p


def test_every_exported_name_is_in_the_api_reference(site):
    modules = {py.stem: names for py in sorted((ROOT / "dbl_kit").glob("*.py")) if (names := module_all(py))}
    assert len(modules) >= 20, sorted(modules)
    missing = {}
    for mod, names in modules.items():
        page = site / "api" / f"{mod}.html"
        assert page.exists(), f"no API page for dbl_kit.{mod}"
        ids = parse(page).ids
        if lost := [n for n in names if f"dbl_kit.{mod}.{n}" not in ids]: missing[mod] = lost
    assert not missing, f"exported names without an API entry: {missing}"
    index = (site / "api" / "index.html").read_text(encoding="utf-8")
    for mod, names in modules.items():
        for n in names: assert f"{mod}.html#dbl_kit.{mod}.{n}" in index, (mod, n)


def test_every_notebook_has_a_page_with_its_title(site):
    for nb in [*ROOT.glob("nbs/*.ipynb"), *ROOT.glob("nbs/experiments/*.ipynb")]:
        page = site / nb.relative_to(ROOT / "nbs").with_suffix(".html")
        assert page.exists(), f"{nb.relative_to(ROOT)} has no page"
        first = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown")
        title = "".join(first["source"]).splitlines()[0].lstrip("# ").strip()
        plain = lambda t: "".join(ch for ch in t if ch not in "`*_")    # markdown's marks (`__main__` is bold "main")
        shown = page.read_text(encoding="utf-8").split("<title>", 1)[1].split("</title>", 1)[0]
        assert plain(shown).startswith(plain(html.unescape(title))), (nb.name, title, shown)


def test_no_link_inside_the_site_is_broken(site):
    broken = []
    for page in site.rglob("*.html"):
        if page.name == "404.html": continue    # served for any missing path, so its links are absolute to the site's root
        for link in parse(page).links:
            path = unquote(urlsplit(link).path)
            if path and not (page.parent / path).resolve().exists(): broken.append(f"{page.relative_to(site)} -> {link}")
    assert not broken, broken[:20]


class Outputs(html.parser.HTMLParser):
    "Counts a notebook page's output areas and plotly figures, and collects the scripts and stylesheets it loads."
    def __init__(self):
        super().__init__(); self.outputs, self.figures, self.scripts, self.styles = 0, 0, [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs); classes = (a.get("class") or "").split()
        if "jp-OutputArea-output" in classes: self.outputs += 1
        if "plotly-graph-div" in classes: self.figures += 1
        if tag == "script" and a.get("src"): self.scripts.append(a["src"])
        if tag == "link" and a.get("rel") == "stylesheet": self.styles.append(a.get("href", ""))


def outputs_of(page):
    p = Outputs(); p.feed(page.read_text(encoding="utf-8")); return p


def test_executed_notebooks_show_their_outputs(site):
    "Every notebook the build executes has its outputs on its page: as many output areas as its executed copy holds."
    executed = build_docs.to_execute(build_docs.NBTEST_SKIP)
    assert {"index.ipynb", "09_losses.ipynb", "20_figures.ipynb"} <= {p.name for p in executed}
    assert not {"train.ipynb", "explore.ipynb"} & {p.name for p in executed}     # the Makefile's NBTEST_SKIP
    with_outputs = 0
    for nb in executed:
        copy = build_docs.EXEC / nb.name
        assert copy.exists(), f"{nb.name} was not executed by the docs build"
        cells = json.loads(copy.read_text())["cells"]
        shown = [o for c in cells if c["cell_type"] == "code" and not re.search(r"^\s*#\|\s*hide", "".join(c["source"]), re.M)
                 for o in c.get("outputs", []) if o.get("data") or o["output_type"] in ("stream", "error")]
        page = outputs_of(site / nb.with_suffix(".html").name)
        assert page.outputs >= len(shown), (nb.name, page.outputs, len(shown))
        with_outputs += page.outputs > 0
    assert with_outputs >= len(executed) // 2, f"only {with_outputs} of {len(executed)} executed notebooks show an output"


def test_figures_are_drawn_by_the_sites_own_plotly(site):
    "The figures notebook's page holds its plotly figures; plotly.js is the site's copy, loaded once per page."
    for name, least in (("20_figures.html", 5), ("index.html", 1)):
        page = outputs_of(site / name)
        assert page.figures >= least, (name, page.figures)
        assert page.scripts.count("js/plotly.min.js") == 1, (name, [s for s in page.scripts if "plotly" in s])
    assert (site / "js" / "plotly.min.js").stat().st_size > 1_000_000


def test_notebook_pages_share_one_stylesheet(site):
    "nbconvert's stylesheet (570 KB) is one shared file that every notebook page links, not a copy inline in each page."
    pages = [p for p in site.rglob("*.html") if "jp-Cell" in p.read_text(encoding="utf-8")]
    assert len(pages) >= 30, len(pages)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        inline = [len(m) for m in re.findall(r"<style[^>]*>(.*?)</style>", text, re.S)]
        assert max(inline, default=0) < 20_000, (page.name, max(inline))
        shared = [s for s in outputs_of(page).styles if "css/notebook-" in s]
        assert len(shared) == 1 and (page.parent / shared[0]).resolve().stat().st_size > 100_000, (page.name, shared)


def test_math_renderer_and_every_asset_are_local(site):
    "MathJax (and its settings) ship with the site, and no page loads a script or stylesheet from the network."
    mathjax = site / "js" / "mathjax" / "tex-svg-full.js"
    assert mathjax.exists() and mathjax.stat().st_size > 1_000_000 and b"MathJax" in mathjax.read_bytes()[:100_000]
    assert "processHtmlClass" in (site / "js" / "mathjax-config.js").read_text()
    assert "white-space: pre-wrap" in (site / "css" / "extra.css").read_text()       # long code lines wrap
    remote = []
    for page in site.rglob("*.html"):
        p = outputs_of(page)
        depth = "../" * (len(page.relative_to(site).parts) - 1)
        if page.name != "404.html":
            assert depth + "js/mathjax-config.js" in p.scripts and depth + "js/mathjax/tex-svg-full.js" in p.scripts, page
            assert p.scripts.index(depth + "js/mathjax-config.js") < p.scripts.index(depth + "js/mathjax/tex-svg-full.js")
        remote += [f"{page.relative_to(site)}: {u}" for u in p.scripts + p.styles if urlsplit(u).scheme in ("http", "https")
                   or u.startswith("//")]
    assert not remote, remote[:10]


TEX = re.compile(r"\$\$.+?\$\$|\$[^$\s][^$\n]*?\\[A-Za-z]+[^$\n]*?\$|\$[^$\s][^$\n]*?[_^][^$\n]*?\$", re.S)
PROCESSED = {"arithmatex", "jp-RenderedMarkdown", "jp-RenderedLatex"}     # mathjax-config.js's processHtmlClass
VERBATIM = {"pre", "code", "script", "style", "textarea"}                 # MathJax's skipHtmlTags (never typeset)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Formulas(html.parser.HTMLParser):
    "The TeX formulas of a page's article text that lie outside every element MathJax typesets (raw on the page)."
    def __init__(self):
        super().__init__(convert_charrefs=True); self.stack, self.raw, self.typeset = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag not in VOID: self.stack.append((tag, set((dict(attrs).get("class") or "").split())))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag: break

    def handle_data(self, data):
        if any(t in VERBATIM for t, _ in self.stack) or not any("md-content__inner" in c for _, c in self.stack): return
        for m in TEX.finditer(data):
            if any(c & PROCESSED for _, c in self.stack): self.typeset += 1
            else: self.raw.append(m.group(0)[:80])


def test_no_formula_is_left_raw(site):
    """Every formula of a page (notebook markdown, markdown pages, docstrings) is inside an element MathJax typesets:
    the notebooks' formulas are in their markdown cells, the markdown pages' are marked by arithmatex."""
    raw, typeset = {}, {}
    for page in site.rglob("*.html"):
        p = Formulas(); p.feed(page.read_text(encoding="utf-8"))
        if p.raw: raw[str(page.relative_to(site))] = p.raw[:3]
        typeset[page.name] = p.typeset
    assert not raw, raw
    assert typeset["09_losses.html"] >= 10 and typeset["10_transfers.html"] >= 5, typeset


def test_experiment_pages_have_distinct_titles(site):
    titles = {}
    for page in sorted((site / "experiments").glob("*.html")):
        titles.setdefault(page.read_text(encoding="utf-8").split("<title>", 1)[1].split("</title>", 1)[0], []).append(page.name)
    assert all(len(v) == 1 for v in titles.values()), titles
