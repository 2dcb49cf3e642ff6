# The two commands a new user needs: `make demo` and `make test`. Everything they need is
# installed here: Python packages into .venv, Apache and openssh-server from Debian's packages; the sandbox
# installs PM2 from the npm registry under its own folder.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VMK := $(VENV)/bin/vmkeeper
SANDBOX ?= .sandbox

.PHONY: venv system-deps test test-fast demo demo-down lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Apache 2.4 from Debian's packages (the sandbox runs it with its own config on loopback).
system-deps:
	@if ! command -v apache2 >/dev/null && [ ! -x /usr/sbin/apache2 ]; then \
		echo "installing apache2 from Debian's packages"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends apache2; \
	fi
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver from Debian's packages (the dashboard's browser tests)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	fi
	@# openssh-server: the fleet tests run real Ansible over real SSH to a loopback sshd.
	@if [ ! -x /usr/sbin/sshd ]; then \
		echo "installing openssh-server from Debian's packages"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server; \
	fi
	@command -v node >/dev/null || { echo "Node.js 20 is required: install it (apt-get install nodejs npm)"; exit 1; }

test: venv system-deps
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

demo: venv system-deps
	$(PY) -m vmkeeper.cli.demo --dir $(SANDBOX)

demo-down: venv
	$(VMK) sandbox down --dir $(SANDBOX)

clean: demo-down
	rm -rf $(VENV) $(SANDBOX)
