# Thin wrapper around meson. Every target installs the Debian packages it needs first.
BUILD ?= build
DEB_PACKAGES := g++ meson ninja-build pkg-config cmake python3 \
	libsdbus-c++-dev libsystemd-dev libsqlite3-dev sqlite3 nlohmann-json3-dev \
	libcli11-dev libfmt-dev doctest-dev libssl-dev libcurl4-openssl-dev prometheus-alertmanager systemd dbus procps util-linux passwd clang-format supervisor \
	e2fsprogs debootstrap systemd-container
# Only for the libFuzzer targets (make fuzz, and the fuzz_smoke test of make test).
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev libfuzzer-14-dev
FUZZ_SECONDS ?= 60
MESON_TEST_ARGS ?=
SOAK_SEEDS ?= 50
SOAK_OPS ?= 60

.PHONY: all deps fuzz-deps setup build test demo bench soak fuzz clean

all: build

deps:
	@$(call install,$(DEB_PACKAGES))

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

demo: build
	bash tools/demo.sh $(BUILD)/src/cli/cerberus

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
