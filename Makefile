# Thin wrapper around meson. Every target installs the Debian packages it needs first.
BUILD ?= build
DEB_PACKAGES := g++ meson ninja-build pkg-config cmake python3 \
	libsdbus-c++-dev libsystemd-dev libsqlite3-dev sqlite3 nlohmann-json3-dev \
	libcli11-dev libfmt-dev doctest-dev libssl-dev libcurl4-openssl-dev prometheus-alertmanager systemd dbus procps util-linux passwd clang-format supervisor \
	e2fsprogs debootstrap systemd-container scdoc man-db \
	prometheus \
	chromium fonts-dejavu-core tmux \
	python3-aiosmtpd openssl \
	clang-tidy
# The JSON Schema validator that holds schema/rules.schema.json to the parser (test_schema).
DEB_PACKAGES += python3-jsonschema
# Only for make deb: what debian/control's Build-Depends names, and the packaging tools.
DEB_BUILD_PACKAGES := dpkg-dev debhelper lintian scdoc meson ninja-build pkg-config python3 \
	systemd libsdbus-c++-dev libsystemd-dev libsqlite3-dev nlohmann-json3-dev libcli11-dev \
	libfmt-dev libssl-dev libcurl4-openssl-dev
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_ARCH = $(shell dpkg --print-architecture)
# The package and its build tree: the source is copied to $(BUILD)/deb/cerberus, so
# dpkg-buildpackage leaves the .deb, .changes and .buildinfo in $(BUILD)/deb.
DEB := $(BUILD)/deb/cerberus_$(DEB_VERSION)_$(DEB_ARCH).deb
# Only for the libFuzzer targets (make fuzz, and the fuzz_smoke test of make test).
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev libfuzzer-14-dev
FUZZ_SECONDS ?= 60
MESON_TEST_ARGS ?=
SOAK_SEEDS ?= 50
SOAK_OPS ?= 60

.PHONY: all deps deb-deps fuzz-deps setup build test deb demo bench soak fuzz clean

all: build

deps:
	@$(call install,$(DEB_PACKAGES))

deb-deps:
	@$(call install,$(DEB_BUILD_PACKAGES))

fuzz-deps:
	@$(call install,$(FUZZ_PACKAGES))

# Installs the Debian packages of $(1) that are missing (as root), or says how to.
define install
	missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "cerberus: missing Debian packages; install them with: sudo apt-get install -y $$missing" >&2; exit 1; \
	fi; \
	echo "installing: $$missing"; \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing
endef

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

setup: deps $(BUILD)/build.ninja

build: setup
	meson compile -C $(BUILD)

test: build fuzz-deps
	meson test -C $(BUILD) --print-errorlogs $(MESON_TEST_ARGS)

# The Debian package, rebuilt when a file git knows changes; lintian must report no error.
deb: $(DEB)
	lintian --fail-on error --info --display-info $(DEB:.deb=.changes)

$(DEB): $(wildcard $(shell git ls-files 2>/dev/null)) | deb-deps
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/cerberus
	tar -c --exclude=./.git --exclude=./$(BUILD) --exclude='./obj-*' --exclude=./debian/.debhelper \
		--exclude=./debian/cerberus --exclude=./debian/files . | tar -x -C $(BUILD)/deb/cerberus
	cd $(BUILD)/deb/cerberus && \
		CXX="$$(command -v ccache >/dev/null && echo 'ccache g++' || echo g++)" \
		CCACHE_BASEDIR=$(CURDIR) dpkg-buildpackage -us -uc -b -Jauto
	rm -rf $(BUILD)/deb/cerberus
	@echo "cerberus: built $(DEB)"

# Builds only the binary the demo runs; keeps the history and its report in $(BUILD)/demo.
demo: setup
	meson compile -C $(BUILD) src/cli/cerberus
	bash tools/demo.sh $(BUILD)/src/cli/cerberus $(BUILD)/demo

bench: build
	meson compile -C $(BUILD) bench
	bash bench/run.sh $(BUILD)

# The truth suite with many seeds and longer scenarios; a failing seed is printed with the
# line that reruns it.
soak: build
	CERBERUS_TRUTH_SEEDS=$(SOAK_SEEDS) CERBERUS_TRUTH_OPS=$(SOAK_OPS) \
		meson test -C $(BUILD) --print-errorlogs --timeout-multiplier 0 truth

# Each libFuzzer target for FUZZ_SECONDS, in a clang build (ASan, UBSan) of its own.
fuzz: fuzz-deps
	bash fuzz/run.sh $(BUILD)/fuzz/clang $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
