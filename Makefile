# The README's two commands: `make demo` and `make test`. Both do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dbl-kit-installed
RUN := demo-$(shell date +%Y%m%d-%H%M%S)
NBTEST_SKIP := ^(train|explore)\.ipynb$$|^[_.]
# Parallel test workers: one per core, at most 4 (each training test uses one torch thread).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: setup demo test export-check readme nbtest pytest clean docs

setup: $(STAMP)

# A virtual environment with the kit (editable) and its dev extras. (pip compiles every installed module to bytecode:
# 30 s of a 130 s install, but `--no-compile` made the tests 1.5x slower where PYTHONDONTWRITEBYTECODE is set, as
# every process then compiles what it imports.) An already-installed torch is kept (the venv
# sees the system's site-packages); otherwise torch==2.13.0 (its CPU wheel) is installed first, so that pip does
# not pull a newer CUDA build.
$(STAMP): pyproject.toml
	@set -e; \
	if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "setup: keeping the installed torch $$($(PYTHON) -c 'import torch; print(torch.__version__)')"; \
	  test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0; \
	fi; \
	$(BIN)/pip install -q -e ".[dev]"; \
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null; \
	touch $(STAMP)

# Offline DBL on the embedded `shapes` dataset through papermill: an anchor, then a target that learns to beat it beside
# its same-budget control (the anchor's weights trained as long without the transfer), all three evaluated and printed.
# Sized to train and evaluate in under 2 minutes on two idle cores: 6000 of the 25000 training captions, 2 + 2 epochs,
# 128-dimensional embeddings (README: what it trades).
DEMO_PARAMS := -p scenario offline -p transfer rel_max -p control True -p max_train_captions 6000 -p anchor_epochs 2 -p epochs 2 -p embed_size 128
demo: setup
	@mkdir -p runs
	$(BIN)/papermill nbs/train.ipynb runs/$(RUN).ipynb -p run_name $(RUN) -p progress True $(DEMO_PARAMS) --cwd nbs --log-output --no-progress-bar \
	  2> >(grep --line-buffered -v -E "^\s*$$|Executing|Ending Cell|Input Notebook|Output Notebook|Black is not installed|kernel_name|Kernel Name" >&2)
	@echo "run: runs/$(RUN); anchor vs target in the explorer: open nbs/explore.ipynb with run_dir = \"runs/$(RUN)\""

# The whole suite: the library is in step with the notebooks, the notebooks' own tests, pytest (reference checks,
# papermill runs of every runnable notebook, the docs site, and the browser test when Chromium is installed).
test: setup export-check nbtest docs pytest

export-check:
	@$(BIN)/nbdev-export
	@if [ -n "$$(git status --porcelain -- dbl_kit)" ]; then \
	  git status --porcelain -- dbl_kit; echo "nbdev-export changed dbl_kit/: export the notebooks and commit"; exit 1; \
	else echo "export-check: dbl_kit/ is in step with nbs/"; fi
	@tmp=$$(mktemp -d); $(BIN)/jupyter nbconvert --to markdown --log-level WARN nbs/index.ipynb --output-dir $$tmp --output README; \
	if ! cmp -s $$tmp/README.md README.md; then \
	  diff $$tmp/README.md README.md | head -20; echo "README.md differs from nbs/index.ipynb: run make readme and commit"; exit 1; \
	else echo "export-check: README.md is generated from nbs/index.ipynb"; fi

# README.md is generated from nbs/index.ipynb (nbdev's convention: the index notebook is the README's source).
readme: setup
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN nbs/index.ipynb --output-dir . --output README

# The docs site, built into _docs/ from the notebooks (open _docs/index.html; pages are NAME.html, so no server is
# needed, and nothing is loaded from the network: MathJax and plotly.js ship with the site). The generator is MkDocs
# with mkdocs-material, mkdocs-jupyter and mkdocstrings-python (the `docs` extra): nbdev-docs needs Quarto, which no
# package registry ships. The build executes the notebooks of nbs/ but NBTEST_SKIP's (JOBS at a time, as
# nbdev-test does; a cell that raises fails it) into _proc/exec, so the pages show their outputs while the committed
# notebooks stay clean; an execution is reused while its notebook and the library are unchanged. Strict: a broken
# link or a name it cannot document fails the build. tools/build_docs.py says more.
docs: setup
	$(BIN)/python tools/build_docs.py --jobs $(JOBS) --skip '$(NBTEST_SKIP)'

# The notebooks' own tests: the docs build's execution alone (nbdev-test's semantics, every notebook run afresh), so
# that `make test` executes each notebook once: its `docs` step then renders these executions.
nbtest:
	$(BIN)/python tools/build_docs.py --execute-only --fresh --jobs $(JOBS) --skip '$(NBTEST_SKIP)'

pytest:
	$(BIN)/python -m pytest -q -n $(JOBS) --durations 15

clean:
	rm -rf $(VENV) runs _proc _docs
