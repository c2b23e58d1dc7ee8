# Two commands for users: `make book` and `make test`. Each one creates .venv
# and installs the kit into it when missing (idempotent: a second run installs
# nothing unless pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU/CUDA build of torch is machine-specific: this pin is the one on the
# course's CI image. Override with `make TORCH="torch torchvision" test`.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: book test notebooks install browser clean

# The installs of `make test` (pip's and the browser's) run side by side.
MAKEFLAGS += --jobs=2

install: $(STAMP)

# pip byte-compiles what it installs on one core; compileall does the same work on
# every core (2 cores: 24 s against ~38 s inside pip).
SITE_PACKAGES = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile $(TORCH)
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(SITE_PACKAGES) > $(VENV)/compileall.log || \
	  echo "note: $$(grep -c '^\*\*\*' $(VENV)/compileall.log) file(s) are not valid Python $$($(BIN)/python -c \
	  'import sys; print(*sys.version_info[:2], sep=".")') and were not byte-compiled (as pip skips them): $(VENV)/compileall.log"
	touch $(STAMP)

# Execute every notebook in the quick profile, then build the HTML book with
# warnings as errors. A failing notebook stops the build; its executed copy in
# _build/executed shows the traceback. Two notebooks at a time (chains that share
# zoo models stay in order), one thread each, as the test suite runs them, so the
# zoo's models are the suite's on any machine: cold in 9 min 49 s and 19.0 CPU
# minutes on 2 cores, against 10 min 35 s and 20.6 with two threads each.
NOTEBOOK_JOBS := --jobs 2 --threads 1

book: $(STAMP)
	$(BIN)/course notebooks run $(NOTEBOOK_JOBS)
	$(BIN)/course book

notebooks: $(STAMP)
	$(BIN)/course notebooks run $(NOTEBOOK_JOBS)

# The book's browser test needs Chromium. Installed here (never inside a test)
# where root and apt-get allow it; elsewhere the test skips and says how to get it.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "note: Chromium is not installed and cannot be installed here; the browser test will skip"

test: $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf _build
