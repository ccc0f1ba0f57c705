PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
LANGS ?=

.PHONY: help install test-install host-packages test-packages images run test unit bench clean

help:
	@echo "make run    build the images (every language; LANGS=python3 for one), then run"
	@echo "            a manager and one agent (Ctrl-C stops)"
	@echo "make test   run the whole test suite (real Docker engine included)"
	@echo "make unit   run the unit tests only"
	@echo "make bench  run the benchmarks"

# What running needs (make run), and what the tests add (make test).
install:
	@$(PYTHON) -c "import sorna.client, sorna.language_spec, txzmq, txredisapi, hiredis, prometheus_client, docker, autobahn" 2>/dev/null || \
	  $(PIP) install --config-settings editable_mode=compat -e .

test-install:
	@$(PYTHON) -c "import sorna.client, sorna.language_spec, moto, websocket, ultra_piston, selenium, jupyterlab, jupyter_kernel_test, papermill" 2>/dev/null || \
	  $(PIP) install --config-settings editable_mode=compat -e ".[test]"

# Debian packages: debootstrap builds the base image; the tests start redis-server and
# supervisord processes of their own, and the gateway's browser tests Chromium.
host-packages:
	@bash etc/install-host-packages.sh debootstrap debian-archive-keyring

test-packages: host-packages
	@bash etc/install-host-packages.sh redis-server supervisor chromium chromium-driver

images: install host-packages
	sorna images build $(LANGS)

run: images
	@bash etc/dev-cluster.sh

# The conformance suites of every language (a third of the time, mostly spent waiting
# on kernels) run beside the rest, in a second trial.
BESIDE = tests.integration.test_languages,tests.integration.test_jupyter_conformance,tests.integration.test_programs

test: test-install test-packages
	$(PYTHON) -m tests.summary --force-gc --reporter=timing --beside $(BESIDE) tests

unit: test-install
	$(PYTHON) -m tests.summary --force-gc tests.test_proto tests.test_server tests.test_registry \
	  tests.test_manager tests.test_agent tests.test_agent_runs tests.test_client \
	  tests.test_transport tests.test_logging tests.test_identity tests.test_grading \
	  tests.test_warm_pools tests.test_process_driver tests.test_keys tests.test_tokens tests.test_gateway tests.test_gateway_tenants \
	  tests.test_code_shape tests.test_language_spec tests.test_repl_parts

bench: images
	$(PYTHON) bench/run_all.py --json bench-results.json

clean:
	rm -rf _trial_temp* build dist *.egg-info
