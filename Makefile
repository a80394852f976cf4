# Two commands for a fresh machine: `make run` and `make test`. Both install first, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
CHROMIUM ?= /usr/bin/chromium

.PHONY: install install-dev run lint test test-fast bench lighthouse chromium redis-server wrk clean

install: $(VENV)/.installed-app
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# llama.cpp, built portably. pip's default build passes -march=native: the binary then uses whatever the
# build host has (AVX-512, AMX) and dies with SIGILL elsewhere, or on VMs that advertise AMX without granting
# it. We build for a fixed baseline instead: x86-64-v3 (AVX2, FMA, F16C; every x86-64 server CPU since 2013),
# AVX-512 and AMX off; plain armv8-a on arm64. tests/test_portable_build.py disassembles the library to check.
ARCH := $(shell uname -m)
LLAMA_CMAKE_ARGS_x86_64 := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
	-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_CMAKE_ARGS_aarch64 := -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $(LLAMA_CMAKE_ARGS_$(ARCH))
LLAMA_WHEELS := $(VENV)/llama-wheels

# The first install compiles llama.cpp (about 5 minutes on 2 cores) into a wheel kept in the venv. pip's own
# wheel cache is bypassed (--no-cache-dir) both ways, so a native wheel built earlier never comes back.
$(LLAMA_WHEELS)/.built: requirements-local.txt | $(VENV)/bin/python
	rm -rf $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
		-w $(LLAMA_WHEELS) "$$(grep -o '^llama-cpp-python[^ ]*' requirements-local.txt | sed 's/\[server\]//')"
	touch $@

$(VENV)/.installed-app: requirements.txt requirements-local.txt requirements-local-nodeps.txt $(LLAMA_WHEELS)/.built
	$(BIN)/pip install -q --no-cache-dir --find-links $(LLAMA_WHEELS) --only-binary llama-cpp-python \
		-r requirements.txt -r requirements-local.txt
	$(BIN)/pip install -q --no-deps -r requirements-local-nodeps.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-app
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser of its own).
chromium:
	@test -x $(CHROMIUM) || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Debian's Redis for the tests that need a real one (the redis_server fixture runs /usr/bin/redis-server).
redis-server:
	@test -x /usr/bin/redis-server || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }

run: install
	FLASK_DEBUG=1 $(BIN)/flask --app chatbot run --port $(PORT)

# axe-core, injected into pages by the accessibility tests.
AXE := tests/node_modules/axe-core/axe.min.js
$(AXE):
	cd tests && npm install --silent --no-save --no-package-lock --no-audit --no-fund axe-core@4.14.1

# ruff, configured in pyproject.toml: lint everything, then check the formatting.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev chromium redis-server $(AXE) lint
	$(BIN)/python -m pytest

# What needs no browser, S3 server, real model, Redis or gunicorn: a quick check while working.
test-fast: install-dev
	$(BIN)/python -m pytest -m "not browser and not s3 and not model and not redis and not gunicorn"

# wrk, the load generator of the benchmarks.
wrk:
	@command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }

# Lighthouse 12 from npm (it runs on Node 20), in bench/node_modules, driving Debian's Chromium.
LIGHTHOUSE := bench/node_modules/.bin/lighthouse
$(LIGHTHOUSE):
	cd bench && npm install --silent --no-save --no-package-lock --no-audit --no-fund lighthouse@12.8.2

bench: install-dev chromium wrk $(LIGHTHOUSE)
	$(BIN)/python -m bench

# The four Lighthouse scores of / (phone and desktop presets), the app under gunicorn.
lighthouse: install-dev chromium $(LIGHTHOUSE)
	$(BIN)/python -m bench.lighthouse

clean:
	rm -rf $(VENV) instance .pytest_cache tests/node_modules bench/node_modules
