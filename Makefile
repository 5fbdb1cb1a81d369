# privsep: the two set-up commands are `make demo` and `make test`.
#
# Both first run `deps`, which is idempotent: as root on Debian/Ubuntu it apt-get installs
# what is missing; otherwise it prints the exact command to run and stops.

SWIFT        ?= swift
SWIFT_FLAGS  ?=
DEB_PACKAGES  = gcc libc6-dev python3 libjansson-dev libseccomp-dev jq pkg-config dash shellcheck bubblewrap graphviz mandoc

.PHONY: all deps build release test demo bench clean soak fuzz check-sanitize

all: build

deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "deps: missing Debian packages:$$missing"; \
	  echo "deps: run: sudo apt-get install -y$$missing"; \
	  exit 1; \
	fi

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# Every suite: the Swift unit and integration tests, then each script in Tests/suites in order.
test: build
	sh Tests/run-suites.sh

demo: build
	sh examples/demo.sh

bench: release
	sh Tests/Benchmarks/run.sh

# Hardening (docs/security.md): the long soak, the fuzzers for FUZZ_SECONDS each, sanitizer runs.
soak: build
	python3 Tests/Soak/run.py --requests $${SOAK_REQUESTS:-1000000} --chaos 0.5 --timeout 1800

fuzz: deps
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} sh Tests/Fuzz/run.sh

check-sanitize: deps
	sh Tests/Fuzz/sanitize.sh

clean:
	rm -rf .build Tests/out
