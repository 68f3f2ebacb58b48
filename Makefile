# The README's set-up: `make demo` and `make test` each bootstrap everything
# (a .venv with the package, plus ffmpeg/ffprobe for musdb) and then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# tensorflow-io's in-graph audio reader only loads on its last release's stack
# (TF 2.16, numpy<2), pinned by the `tfio` extra in a venv of its own.
TFIO_VENV ?= .venv-tfio
TFIO_BIN := $(TFIO_VENV)/bin
TFIO_STAMP := $(TFIO_VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: help demo test test-fast test-tfio bench-data venv ffmpeg clean

help:
	@echo "make demo   bootstrap, then reproduce the paper's comparison on demo data into $(DEMO_DIR)/ (a few minutes)"
	@echo "make test   bootstrap, then run the test suite, then test-tfio"
	@echo "make test-fast  bootstrap, then run the tests not marked slow (under 3 minutes on 2 cores)"
	@echo "make test-tfio  build .venv-tfio (TF 2.16 + tensorflow-io) and test the audio readers and keras_dae/compat.py there"
	@echo "make bench-data  data-pipeline throughput against a musdb+librosa loop (a few minutes)"
	@echo "make clean  remove the virtual environments and demo outputs"

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

# Fails if pip resolved anything but the pinned TF 2.16 (tensorflow-io's ops would not load).
$(TFIO_STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(TFIO_VENV)
	$(TFIO_BIN)/python -m pip install --quiet --upgrade pip
	$(TFIO_BIN)/python -m pip install --quiet -e '.[test,tfio]'
	TF_CPP_MIN_LOG_LEVEL=3 $(TFIO_BIN)/python -c "import tensorflow as tf; \
		assert tf.__version__.startswith('2.16.'), f'pip installed TensorFlow {tf.__version__}, not 2.16'"
	touch $@

# musdb imports stempeg, which refuses to import without both binaries.
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then \
		:; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing ffmpeg with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "installing ffmpeg with sudo apt-get"; \
		sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	elif command -v brew >/dev/null 2>&1; then \
		brew install ffmpeg; \
	else \
		echo "error: ffmpeg and ffprobe must be on PATH (musdb reads stems with them); install them (e.g. 'sudo apt-get install ffmpeg' or 'brew install ffmpeg') and rerun make" >&2; \
		exit 1; \
	fi
	@command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || \
		{ echo "error: ffmpeg/ffprobe still not on PATH after installing; install them by hand and rerun make" >&2; exit 1; }

# The paper's comparison on demo tracks made from the embedded clip (MUSDB_PATH ignored); resumable.
demo: $(STAMP) ffmpeg
	$(BIN)/keras-dae spectrogram --out $(DEMO_DIR)/example_spectrogram.png
	env -u MUSDB_PATH $(BIN)/keras-dae reproduce --preset quick --out $(DEMO_DIR)
	@echo "demo report: $(DEMO_DIR)/report.html (figures inline) and $(DEMO_DIR)/report.md"

test: $(STAMP) ffmpeg
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-tfio

# Everything but the end-to-end and long tests (marked `slow`); `make test` runs those too.
test-fast: $(STAMP) ffmpeg
	$(BIN)/python -m pytest -m "not slow"

# The readers, and the private Keras/TF APIs of keras_dae/compat.py on this stack (TF 2.16).
test-tfio: $(TFIO_STAMP)
	$(TFIO_BIN)/python -m pytest -q tests/test_readers.py tests/test_compat.py

# Speed targets (prints ratios; see benchmarks/README.md).
bench-data: $(STAMP) ffmpeg
	$(BIN)/python benchmarks/bench_data.py

clean:
	rm -rf $(VENV) $(TFIO_VENV) $(DEMO_DIR) *.egg-info
