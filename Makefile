# Everything a developer or CI runs. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench bench-quick soak lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The optional extras (Ray, connectors' clients, the HTTP service) that the whole suite
# tests: pinned in their own lock file, installed by `make test`, not by `make demo`.
$(VENV)/.extras: $(STAMP) requirements-extras.lock
	$(PY) -m pip install --quiet -r requirements-extras.lock
	touch $(VENV)/.extras

$(VENV)/.bench: $(VENV)/.extras requirements-bench.lock  # SERVE needs the serve extra
	$(PY) -m pip install --quiet -r requirements-bench.lock
	touch $(VENV)/.bench

demo: $(STAMP)  ## install, then run the demo flow (temperature monitor)
	$(PY) examples/temperature_monitor.py
	@echo "The riverbed command is in $(VENV)/bin: run '. .venv/bin/activate' (then 'riverbed --help'), or call $(VENV)/bin/riverbed."

test: $(VENV)/.extras  ## the whole test suite (installs the optional extras it tests)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

typecheck: $(VENV)/.extras  ## against the optional extras too (Ray, the connectors' clients)
	$(VENV)/bin/mypy --strict src/riverbed

check: lint typecheck test  ## what CI runs

bench: $(VENV)/.bench  ## W1-W7 beside the plain loop, naive asyncio, Bytewax and DBOS; PARALLEL
	$(PY) -m benchmarks

bench-quick: $(VENV)/.bench
	$(PY) -m benchmarks --events 200000 --w6-seconds 10 --w5-runs 300

soak: $(VENV)/.extras  ## 200 SIGKILLs of a durable run on SQLite, then on PostgreSQL (RIVERBED_TEST_POSTGRES); 100 per connector
	$(PY) -m tests.durability.crash_harness --kills 200 --store sqlite:///$$(mktemp -d)/soak.db
	$(PY) -m tests.durability.crash_harness --kills 200 --store $${RIVERBED_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test}
	$(PY) -m tests.connectors.crash files --kills 100
	$(PY) -m tests.connectors.crash redis --kills 100
	$(PY) -m tests.connectors.crash nats --kills 100
	$(PY) -m tests.connectors.crash rabbitmq --kills 100
	$(PY) -m tests.connectors.crash mqtt --kills 100
	$(PY) -m tests.connectors.crash postgres --kills 100

EXTRAS := ray,redis,nats,rabbitmq,mqtt,http,msgpack,serve

LOCK_VENV ?= /tmp/riverbed-lock

lock:  ## re-pin requirements.lock and requirements-extras.lock from pyproject.toml in clean venvs
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet -e '.[dev,postgres]'
	$(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v '^riverbed' > requirements.lock
	$(LOCK_VENV)/bin/pip install --quiet -c requirements.lock -e '.[dev,postgres,$(EXTRAS)]'
	$(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v '^riverbed' \
		| grep -vxFf requirements.lock > requirements-extras.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
