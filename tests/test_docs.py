"""The docs site (`make docs` -> _docs/): every exported name has its entry in the API reference, every notebook
has its page, and no link inside the site points to a file the site lacks.

The names come from the modules' source (`__all__` read with ast), the pages from nbs/, independently of
tools/build_docs.py. The site is built here when _docs/ is missing or older than a notebook or module (make test
builds it first, in the `docs` target).
"""
import ast, html, html.parser, json
from urllib.parse import unquote, urlsplit

import pytest

from docs_site import ROOT, ensure_site

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
