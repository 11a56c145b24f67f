# Every target works on its own from a fresh clone: the ones that need the venv build it first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test test-client test-oldest bench lint format clean smoke-docker

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch/torchvision come from the machine's local
# wheels when pip's constraint file points there; elsewhere from the package index.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e './client[polygons]'
	touch $(STAMP)

# HOST and PORT optional (make serve HOST=0.0.0.0 PORT=8080); everything else through MASKRCNN_* variables.
serve: $(STAMP)
	$(BIN)/maskrcnn serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The SDK's tests alone (a live tiny-model server on 127.0.0.1, about 20 s on two cores).
test-client: $(STAMP)
	$(BIN)/python -m pytest -q tests/client

# The whole suite again on the oldest torch/torchvision pyproject admits (2.11/0.26, the GPU machine's), in
# its own venv, so that the range's lower end is tested and not only claimed. CPU only, like `make test`.
OLDEST := .venv-oldest
test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider

$(OLDEST)/.installed: pyproject.toml client/pyproject.toml
	test -x $(OLDEST)/bin/python || $(PY) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet torch==2.11.0 torchvision==0.26.0
	$(OLDEST)/bin/python -m pip install --quiet -e '.[dev]'
	$(OLDEST)/bin/python -m pip install --quiet -e './client[polygons]'
	touch $@

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.precision
	$(BIN)/python -m bench.precision --random-weights
	$(BIN)/python -m bench.batching
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.profile
	$(BIN)/python -m bench.peers  # needs the bench extra (onnx, onnxruntime, openvino); one line and exit 0 without

# The Docker image built and served by docker-compose (CPU variant), a photo through /detect, everything torn
# down again (docker/smoke-test.sh). Root, docker.io, docker-compose, debootstrap; ~7 min on 2 cores: not in `make test`.
smoke-docker: $(STAMP)
	docker/smoke-test.sh

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache .ruff_cache
