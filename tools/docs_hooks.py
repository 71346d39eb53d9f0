"""MkDocs hooks of the docs site (mkdocs.yml's `hooks:`).

mkdocs-jupyter renders each notebook with nbconvert's template, which puts JupyterLab's whole stylesheet (about
570 KB, the same on every page) inline in the page. Inline, it is 60% of every notebook page, and the search
plugin parses it as page text on every build (16 of the build's 34 s). Each large inline stylesheet is moved into
one shared file, `css/notebook-<hash>.css`, that every page links (a relative link: the site opens from file://).
"""
import hashlib, re
from pathlib import Path

LARGE = 20_000          # characters: nbconvert's stylesheets; the small inline styles of outputs stay in the page
STYLE = re.compile(r'<style type="text/css">(.*?)</style>', re.S)
_sheets = {}            # file name in the site -> stylesheet text, written once after the build


def on_page_content(html, page, config, files):
    "Replace each large inline stylesheet of a page with a link to its shared copy."
    up = "../" * page.file.dest_uri.count("/")           # from the page's folder back to the site's root

    def shared(m):
        css = m.group(1)
        if len(css) < LARGE: return m.group(0)
        name = f"css/notebook-{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
        _sheets[name] = css
        return f'<link rel="stylesheet" href="{up}{name}">'
    return STYLE.sub(shared, html)


def on_post_build(config):
    "Write the shared stylesheets into the site."
    for name, css in _sheets.items():
        dest = Path(config.site_dir) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(css)
