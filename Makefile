# The two commands a reader needs: `make demo` and `make test`. Everything else is a part.
SHELL := /bin/bash
ROOT := $(CURDIR)
ENV := source $(ROOT)/scripts/env.sh &&
PYTEST_ARGS ?=

.PHONY: demo test bootstrap sandbox-up sandbox-down lint sanity pytest unit integration build ee-context clean

demo: bootstrap
	@$(ENV) bash scripts/demo.sh

test: bootstrap
	@$(ENV) bash scripts/test.sh

bootstrap:
	@bash scripts/bootstrap.sh

sandbox-up: bootstrap
	@scripts/sandbox up

sandbox-down:
	@scripts/sandbox down

lint: bootstrap
	@$(ENV) ansible-lint --profile production

sanity: bootstrap
	@bash scripts/sanity.sh

# Unit + integration in one pytest run (its summary line is the result).
pytest: bootstrap
	@$(ENV) scripts/sandbox up >/dev/null && pytest tests/unit tests/integration tests/reliability $(PYTEST_ARGS)

unit: bootstrap
	@$(ENV) pytest tests/unit $(PYTEST_ARGS)

build: bootstrap
	@$(ENV) ansible-galaxy collection build --force --output-path dist .

# The execution environment's build context (docs/awx.md): `podman build .build/ee` makes the image.
ee-context: build
	@$(ENV) ansible-builder create -f execution-environment.yml -c .build/ee --output-filename Containerfile

clean: sandbox-down
	rm -rf .sandbox .cache dist tests/output
