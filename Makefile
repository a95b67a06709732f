# Thin wrapper around meson. Every target installs the Debian packages it needs first.
BUILD ?= build
DEB_PACKAGES := g++ meson ninja-build pkg-config cmake python3 \
	libsdbus-c++-dev libsystemd-dev libsqlite3-dev sqlite3 nlohmann-json3-dev \
	libcli11-dev libfmt-dev doctest-dev libssl-dev libcurl4-openssl-dev prometheus-alertmanager systemd dbus procps util-linux passwd clang-format supervisor
MESON_TEST_ARGS ?=

.PHONY: all deps setup build test demo bench clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done | tr '\n' ' '); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "cerberus: missing Debian packages; install them with: sudo apt-get install -y $$missing" >&2; exit 1; \
	fi; \
	echo "installing: $$missing"; \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

setup: deps $(BUILD)/build.ninja

build: setup
	meson compile -C $(BUILD)

test: build
	meson test -C $(BUILD) --print-errorlogs $(MESON_TEST_ARGS)

demo: build
	bash tools/demo.sh $(BUILD)/src/cli/cerberus

bench: build
	meson compile -C $(BUILD) bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
