// MathJax 3's settings for the docs site (tools/build_docs.py copies this file and MathJax's tex-svg-full.js, from the
// django-static-mathjax package, into the site's js/ folder: formulas are typeset offline, from file://).
// Typeset: the formulas pymdownx.arithmatex marks in markdown pages and docstrings (generic mode: \( \) and \[ \] in
// .arithmatex elements) and the ones in the notebooks' markdown cells and markdown/LaTeX outputs (mkdocs-jupyter
// keeps them as $...$ and $$...$$ text). Everything else (code cells, their printed outputs, tables) is left alone,
// so a dollar sign in code or data is never read as math.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    // the theme's page (its md-* elements: navigation, header, the article) is left alone, except these; an element
    // inside one of these is typeset unless it has an ignored class itself (MathJax checks each element's classes)
    ignoreHtmlClass: "md-.*|mathjax_ignore|tex2jax_ignore",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex",
  },
  svg: { fontCache: "global" },
};
