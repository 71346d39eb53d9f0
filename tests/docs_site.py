"""The docs site for the tests that read it (test_docs, test_browser): _docs/ as `make docs` builds it, built here
when it is missing or older than a notebook, a module or the build's own files (the build executes only the notebooks
whose executed copy, in _proc/exec, is out of date: `make test` has executed them all in its `nbtest` step)."""
import fcntl, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_docs"


def sources():
    return [*ROOT.glob("nbs/*.ipynb"), *ROOT.glob("nbs/experiments/*.ipynb"), *ROOT.glob("dbl_kit/*.py"),
            *ROOT.glob("tools/docs_assets/*"), ROOT / "mkdocs.yml", ROOT / "tools" / "build_docs.py", ROOT / "tools" / "docs_hooks.py",
            ROOT / "pyproject.toml", ROOT / "CHANGELOG.md", ROOT / "CITATION.cff"]


def ensure_site():
    "Path of the built site, building it first when it is stale (one build at a time across pytest-xdist workers)."
    index = SITE / "index.html"
    (ROOT / "_proc").mkdir(exist_ok=True)
    with open(ROOT / "_proc" / ".docs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index.exists() or index.stat().st_mtime < max(p.stat().st_mtime for p in sources()):
            subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py")], cwd=ROOT, check=True)
    return SITE
