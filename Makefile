# The two commands of README.md: `make demo` and `make test`.
# Both build the pinned environment first (`make setup`, idempotent).
VENV   := .venv
PYTHON := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test clean

setup:
	@bash tools/setup_env.sh

demo: setup
	@start=$$(date +%s); \
	$(PYTHON) tools/run_demo.py $(DEMO_ARGS) || exit $$?; \
	echo "[demo] finished in $$(( $$(date +%s) - start ))s"

test: setup
	@start=$$(date +%s); \
	$(PYTHON) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	echo "[test] finished in $$(( $$(date +%s) - start ))s"; exit $$rc

clean:
	rm -rf $(VENV) build work_dirs mim_plugins/.mim *.egg-info
