# Aiguillage: every install step lives here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test fuzz bench bench-identify bench-documents bench-amqp bench-security lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/aiguillage run --config channels.yaml

test: $(STAMP)
	@.ci/browser-deps || echo "no headless Chromium: browser tests skip (outside CI only)"
	$(BIN)/pytest -q

fuzz: $(STAMP)  # 20,000 examples a target (AIGUILLAGE_FUZZ_EXAMPLES): long; see tests/fuzz/README.md
	AIGUILLAGE_FUZZ=long $(BIN)/pytest -q --timeout=0 tests/fuzz

lint: $(STAMP)
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/mypy

bench: $(STAMP)  # engine vs python-hl7 and "the floor" (bench/floor_server.py), same run; --messages 20000 for long runs
	$(BIN)/python bench/mllp_ingest.py

bench-identify: $(STAMP)  # 1M patients on SQLite and PostgreSQL: about 6 minutes
	$(BIN)/python bench/identify.py

bench-documents: $(STAMP)  # 135 KB CDA with XSD and extraction: about 1-2 minutes
	$(BIN)/python bench/documents.py --profile

bench-amqp: $(STAMP)  # RabbitMQ and PostgreSQL: raw pika rates, 1 and 2 workers; ~3 minutes
	$(BIN)/python bench/amqp.py

bench-security: $(STAMP)  # attacks on a fresh engine per measure (RSS, held connections, fuzz, TLS)
	$(BIN)/python bench/security.py

clean:
	rm -rf $(VENV) var
