# Tetra CA: `make run` starts a demo CA on localhost; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TETRA := $(VENV)/bin/tetra
# Debian packages the tests drive for real: SoftHSM2 (PKCS#11 token), lego, dehydrated, uacme, Go with
# golang.org/x/crypto/acme (cert-manager's ACME library) and pebble (ACME),
# scep (scepclient), openssl (ocsp, cmp, verify), curl (EST), wrk (the OCSP benchmark's load generator), jq (the API guide),
# systemd (systemd-analyze verify for the unit),
# and gcc, make, cmake, libssl-dev to build libest's estclient/estserver and sscep from source (`clients`),
# chromium (the dashboard's browser tests drive it through Playwright: tests/browser) and npm (htmx, `ui-assets`;
# only where no npm is on PATH: NodeSource's nodejs carries its own npm and conflicts with Debian's).
DEB_PACKAGES := softhsm2 lego dehydrated uacme golang-go golang-golang-x-crypto-dev scep pebble openssl curl ca-certificates wrk jq systemd \
	build-essential cmake libssl-dev chromium $(NPM_PACKAGE)
NPM_PACKAGE := $(if $(shell command -v npm),,npm)
# libest's estclient and estserver (EST) and sscep (SCEP), built once from source into this cached folder;
# the interop tests and benchmarks find them through the same variable (exported).
TETRA_CLIENTS_DIR ?= $(HOME)/.cache/tetra/clients
export TETRA_CLIENTS_DIR
CLIENT_BINS := $(addprefix $(TETRA_CLIENTS_DIR)/bin/,estclient estserver sscep)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench fuzz soak lint typecheck debian-packages clients clean-var ui-assets

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The dashboard's one third-party script, htmx, from the npm registry at install time (never
# committed): unpacked into the virtualenv, where server/manage/ui/assets.py finds it and serves
# it at /ui/static/htmx.min.js.
HTMX_VERSION := 2.0.8
UI_ASSETS := $(VENV)/share/tetra-ui
ui-assets: $(UI_ASSETS)/htmx.min.js
$(UI_ASSETS)/htmx.min.js: | $(VENV)/.installed
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; }
	mkdir -p $(UI_ASSETS)/pack
	cd $(UI_ASSETS)/pack && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null
	tar -xzf $(UI_ASSETS)/pack/htmx.org-*.tgz -C $(UI_ASSETS)/pack package/dist/htmx.min.js
	mv $(UI_ASSETS)/pack/package/dist/htmx.min.js $@
	rm -rf $(UI_ASSETS)/pack

run: $(VENV)/.installed ui-assets
	@if [ ! -f var/tetra.toml ]; then $(TETRA) init --dir ./var; fi
	$(TETRA) serve --config ./var/tetra.toml

debian-packages:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEB_PACKAGES) >/dev/null

# Skipped when the binaries exist (file targets with no prerequisites but the packages, order-only).
clients: $(CLIENT_BINS)
$(CLIENT_BINS) &: | debian-packages
	$(firstword $(wildcard ../shared/clients /work/shared/clients))/build.sh $(TETRA_CLIENTS_DIR)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(wildcard ca protocols server tests interop bench)
	$(VENV)/bin/ruff format --check $(wildcard ca protocols server tests interop bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Two workers, a test file each at a time (--dist loadfile: a module's shared server stays in one
# process). Every test uses its own ports, directories and PostgreSQL database, so files run side by side.
test: debian-packages clients $(VENV)/.installed ui-assets lint
	$(PY) -m pytest -p no:cacheprovider -n 2 --dist loadfile --durations=25 tests interop

bench: debian-packages clients $(VENV)/.installed
	$(PY) bench/bench_core.py
	@for b in bench/bench_ocsp.py bench/bench_crl.py bench/bench_acme.py bench/bench_acme_floor.py bench/bench_est.py bench/bench_scep.py bench/bench_cmp.py \
		bench/bench_inventory.py bench/bench_discovery.py; do \
		if [ -f $$b ]; then $(PY) $$b || exit 1; fi; done

# DOS-06 at length: every fuzz target with 50 times the examples `make test` gives it.
fuzz: $(VENV)/.installed
	TETRA_FUZZ_EXAMPLES=5000 $(PY) -m pytest -p no:cacheprovider tests/fuzz

# LOAD-01: ten minutes of ACME issuance on a SoftHSM2 key, watched for leaks and drift.
soak: debian-packages $(VENV)/.installed
	$(PY) bench/bench_acme_soak.py

clean-var:
	rm -rf var
