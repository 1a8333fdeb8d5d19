# Slipway — one plain GNU Makefile. See README.md for the targets.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR ?=

BUILD := build
OBJ := $(BUILD)/obj
BIN := $(BUILD)/bin

CC ?= cc
PKG_CONFIG ?= pkg-config

# Debian packages the project needs: libraries and tools to build, and the
# programs the tests and the demo run. `make deps` installs what is missing.
DEBS_BUILD := gcc make pkg-config libc6-dev libssl-dev libjansson-dev libcurl4-openssl-dev \
	librpm-dev libsolv-dev libsolvext-dev libarchive-dev libguestfs-dev libsqlite3-dev \
	libmicrohttpd-dev libgnutls28-dev libcmocka-dev xxd zlib1g-dev libpq-dev \
	libxml2-dev libmodulemd-dev
DEBS_TOOLS := jq rpm createrepo-c erofs-utils squashfs-tools dosfstools mtools e2fsprogs gdisk \
	cpio busybox-static systemd-boot-efi qemu-system-x86 qemu-utils ovmf ipxe-qemu \
	libguestfs-tools linux-image-amd64 dpkg-dev curl sqlite3 python3 dnsmasq-base ipxe iproute2 openssl \
	systemd-container gnupg postgresql dnf grub-common seabios prometheus chromium socat
# Only `make bench` needs these: the peers it compares against.
DEBS_BENCH := nginx wrk rauc dbus time
DEBS := $(DEBS_BUILD) $(DEBS_TOOLS)

PKGS_COMMON := libcrypto jansson
# The transport of http.h: libcurl for every program but the agent, which
# links its own client on OpenSSL (common/httpc.c) and so no libcurl.
PKGS_CURL := libcurl
PKGS_BUILDER := rpm libsolv libsolvext libarchive libguestfs sqlite3 libxml-2.0 modulemd-2.0
PKGS_BOOTSERVER := libmicrohttpd sqlite3 gnutls libpq
PKGS_AGENT := libssl zlib

WARNINGS := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
	-Wstrict-prototypes -Wpointer-arith -Wundef
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -O2 -g -fPIC $(WARNINGS) -Icommon -I$(BUILD)/gen
ifeq ($(DEVELOPER),1)
BASE_CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
BASE_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

DEPS_OK := $(BUILD)/.deps-ok
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

ALL_CFLAGS = $(BASE_CFLAGS) $(call pc_cflags,$(PKGS_COMMON) $(PKGS_CURL) $(PKGS_AGENT) $(PKGS_BUILDER) $(PKGS_BOOTSERVER)) $(CFLAGS)

# The two back ends of common/http.h both define http_exchange(): they stay
# out of the library and each program links one (the own one with its TLS
# contexts, on libssl).
HTTP_BACKENDS := common/http-curl.c common/httpc.c common/tlscontext.c
HTTP_CURL := $(OBJ)/common/http-curl.o
HTTP_OWN := $(OBJ)/common/httpc.o $(OBJ)/common/tlscontext.o
COMMON_SRC := $(filter-out $(HTTP_BACKENDS),$(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ)/%.o)
LIBSLIPWAY := $(BUILD)/lib/libslipway.a

BUILDER_SRC := $(wildcard builder/*.c)
BUILDER_OBJ := $(BUILDER_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/initramfs-init.o
BUILDER_LIB := $(BUILD)/lib/libbuilder.a
BUILDER_LIBS = $(call pc_libs,$(PKGS_BUILDER) $(PKGS_COMMON) $(PKGS_CURL)) -lpthread

# Each component is a library of its files but main.c, and a program.
BOOTSERVER_SRC := $(wildcard bootserver/*.c)
BOOTSERVER_OBJ := $(BOOTSERVER_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/ui-assets.o
# The fleet page's files, built into slipwayd (bootserver/ui/embed.sh).
UI_FILES := $(wildcard bootserver/ui/*.html bootserver/ui/*.js bootserver/ui/*.css)
BOOTSERVER_LIB := $(BUILD)/lib/libbootserver.a
BOOTSERVER_LIBS = $(call pc_libs,$(PKGS_BOOTSERVER) $(PKGS_COMMON) $(PKGS_CURL)) -lpthread

AGENT_SRC := $(wildcard agent/*.c)
AGENT_OBJ := $(AGENT_SRC:%.c=$(OBJ)/%.o)
AGENT_LIB := $(BUILD)/lib/libagent.a
AGENT_LIBS = $(call pc_libs,$(PKGS_COMMON) $(PKGS_AGENT)) -lpthread

CTL_SRC := $(wildcard ctl/*.c)
CTL_OBJ := $(CTL_SRC:%.c=$(OBJ)/%.o)
CTL_LIB := $(BUILD)/lib/libctl.a
CTL_LIBS = $(call pc_libs,$(PKGS_COMMON) $(PKGS_CURL)) -lpthread

PROGRAMS := $(BIN)/slipway-build
ifneq ($(wildcard bootserver/main.c),)
PROGRAMS += $(BIN)/slipwayd
endif
ifneq ($(wildcard ctl/main.c),)
PROGRAMS += $(BIN)/slipctl
endif
ifneq ($(wildcard agent/main.c),)
PROGRAMS += $(BIN)/slipway-agent
endif
COMPONENT_LIBS := $(BUILDER_LIB) $(BOOTSERVER_LIB) $(CTL_LIB) $(AGENT_LIB)

UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-bench deps-extra test-fuzz-replay test-sim test-layers check test test-unit test-integration test-boot test-boot-base test-e2e test-fleet test-ha bench demo \
	sample-repo base-repo sample-images fuzz install clean help
.DEFAULT_GOAL := all

all: $(PROGRAMS)

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## make deps          install the Debian packages the project needs (idempotent)
deps:
	@$(MAKE) --no-print-directory -B $(DEPS_OK)

$(DEPS_OK): Makefile
	@mkdir -p $(BUILD)
	@$(MAKE) --no-print-directory deps-extra EXTRA_DEBS="$(DEBS)"
	@touch $@

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Objects and programs are rebuilt when the flags change (SANITIZE, DEVELOPER,
# CFLAGS), so that `make SANITIZE=… check` after a plain build tests what it says.
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS)
ifneq ($(FLAGS_NOW),$(shell cat $(FLAGS_STAMP) 2>/dev/null))
$(shell mkdir -p $(BUILD) && echo '$(FLAGS_NOW)' > $(FLAGS_STAMP))
endif

$(OBJ)/%.o: %.c $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/initramfs-init.c: builder/initramfs-init.sh | $(DEPS_OK)
	@mkdir -p $(dir $@)
	cd builder && xxd -i initramfs-init.sh > ../$@.tmp && mv ../$@.tmp ../$@

$(OBJ)/gen/initramfs-init.o: $(BUILD)/gen/initramfs-init.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-variable-declarations -c $< -o $@

$(BUILD)/gen/ui-assets.c: bootserver/ui/embed.sh $(UI_FILES) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	bootserver/ui/embed.sh $(UI_FILES) > $@.tmp && mv $@.tmp $@

$(OBJ)/gen/ui-assets.o: $(BUILD)/gen/ui-assets.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibootserver -c $< -o $@

$(LIBSLIPWAY): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILDER_LIB): $(filter-out $(OBJ)/builder/main.o,$(BUILDER_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/slipway-build: $(OBJ)/builder/main.o $(BUILDER_LIB) $(HTTP_CURL) $(LIBSLIPWAY)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(BUILDER_LIBS)

$(BOOTSERVER_LIB): $(filter-out $(OBJ)/bootserver/main.o,$(BOOTSERVER_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/slipwayd: $(OBJ)/bootserver/main.o $(BOOTSERVER_LIB) $(HTTP_CURL) $(LIBSLIPWAY)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(BOOTSERVER_LIBS)

$(CTL_LIB): $(filter-out $(OBJ)/ctl/main.o,$(CTL_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/slipctl: $(OBJ)/ctl/main.o $(CTL_LIB) $(HTTP_CURL) $(LIBSLIPWAY)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

$(AGENT_LIB): $(filter-out $(OBJ)/agent/main.o,$(AGENT_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/slipway-agent: $(OBJ)/agent/main.o $(AGENT_LIB) $(HTTP_OWN) $(LIBSLIPWAY)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(AGENT_LIBS)

# A unit test includes the headers of the component it tests (test-<module>
# finds <module>.h in any component folder) and links every component, with
# the libcurl transport; test-<module>-own is the same test on the agent's.
UNIT_HTTP := $(HTTP_CURL)
define unit_link
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DSLIPWAY_SOURCE_DIR=\"$(CURDIR)\" -Ibuilder -Ibootserver -Ictl -Iagent -o $@ $< \
			$(UNIT_EXTRA_SRC) $(UNIT_HTTP) $(COMPONENT_LIBS) $(LIBSLIPWAY) $(LDFLAGS) \
			$(BUILDER_LIBS) $(BOOTSERVER_LIBS) $(AGENT_LIBS) $(call pc_libs,cmocka)
endef
$(BUILD)/tests/test-%: tests/unit/test-%.c $(COMPONENT_LIBS) $(LIBSLIPWAY) $(HTTP_CURL) $(FLAGS_STAMP) | $(DEPS_OK)
	$(unit_link)

UNIT_OWN := apiclient http slot
UNIT_OWN_BIN := $(UNIT_OWN:%=$(BUILD)/tests/test-%-own)
UNIT_BIN += $(UNIT_OWN_BIN)
$(UNIT_OWN_BIN): UNIT_HTTP := $(HTTP_OWN)
$(UNIT_OWN_BIN): ALL_CFLAGS += -DHTTP_BACKEND_OWN
$(UNIT_OWN_BIN): $(BUILD)/tests/test-%-own: tests/unit/test-%.c $(COMPONENT_LIBS) $(LIBSLIPWAY) $(HTTP_OWN) \
		$(FLAGS_STAMP) | $(DEPS_OK)
	$(unit_link)

# The unit tests that start a PostgreSQL server of their own
# (tests/unit/pgserver.c, which runs tests/pg.sh).
UNIT_PG_BIN := $(BUILD)/tests/test-pgserver $(BUILD)/tests/test-store-pg $(BUILD)/tests/test-store-db \
	$(BUILD)/tests/test-store-pg-db \
	$(BUILD)/tests/test-store-areas-hosts $(BUILD)/tests/test-store-fleet \
	$(BUILD)/tests/test-store-areas-coord $(BUILD)/tests/test-store-group-counts $(BUILD)/tests/test-hosts \
	$(BUILD)/tests/test-coordinator $(BUILD)/tests/test-leader $(BUILD)/tests/test-migrate \
	$(BUILD)/tests/test-replicas $(BUILD)/tests/test-filesets $(BUILD)/tests/test-rollout-files \
	$(BUILD)/tests/test-store-pipelines $(BUILD)/tests/test-rollout-budgets
$(UNIT_PG_BIN): tests/unit/pgserver.c tests/unit/pgserver.h
$(UNIT_PG_BIN): UNIT_EXTRA_SRC := tests/unit/pgserver.c

FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# make fuzz FUZZ_TARGETS="gpt state" runs only those.
FUZZ_TARGETS ?= $(FUZZ_SRC:tests/fuzz/fuzz-%.c=%)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(BUILD)/libfuzzer/fuzz-%)
FUZZ_SECONDS ?= 60
DEBS_FUZZ := clang libclang-rt-14-dev
FUZZ_INCLUDES := -Ibuilder -Ibootserver -Iagent -Itests/fuzz

# The fuzz targets built with the compiler in use and a plain driver: they
# replay the saved corpus in `make check`.
$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/driver.c tests/fuzz/fuzz.h $(COMPONENT_LIBS) $(LIBSLIPWAY) $(HTTP_CURL) \
		$(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(FUZZ_INCLUDES) -o $@ $< tests/fuzz/driver.c $(HTTP_CURL) $(COMPONENT_LIBS) $(LIBSLIPWAY) \
		$(LDFLAGS) $(BUILDER_LIBS) $(BOOTSERVER_LIBS) $(AGENT_LIBS)

test-fuzz-replay: $(FUZZ_REPLAY)
	@for f in $(FUZZ_REPLAY); do n=$$(basename $$f); $$f tests/fuzz/corpus/$${n#fuzz-} || \
		{ echo "$$n: FAILED replaying tests/fuzz/corpus/$${n#fuzz-}; again with its messages:"; \
		FUZZ_VERBOSE=1 $$f tests/fuzz/corpus/$${n#fuzz-} 2>&1 | tail -n 40; exit 1; }; done

## make fuzz          run each libFuzzer target for FUZZ_SECONDS (clang); FUZZ_TARGETS picks some
# A target that finds a crash, a leak or a broken invariant stops the run:
# the input is in build/fuzz-artifacts/, to be added to tests/fuzz/corpus/
# with the fix.
fuzz:
	@$(MAKE) --no-print-directory deps-extra EXTRA_DEBS="$(DEBS_FUZZ)"
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@mkdir -p $(BUILD)/fuzz-artifacts
	@for n in $(FUZZ_TARGETS); do mkdir -p $(BUILD)/fuzz-corpus/$$n; \
		echo "== fuzz-$$n ($(FUZZ_SECONDS) s)"; \
		$(BUILD)/libfuzzer/fuzz-$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=$(BUILD)/fuzz-artifacts/$$n- $(BUILD)/fuzz-corpus/$$n tests/fuzz/corpus/$$n \
			>$(BUILD)/fuzz-artifacts/$$n.log 2>&1; rc=$$?; \
		tail -n 3 $(BUILD)/fuzz-artifacts/$$n.log; \
		if [ $$rc -ne 0 ]; then echo "fuzz-$$n: FAILED (rc $$rc), see $(BUILD)/fuzz-artifacts/$$n.log"; exit 1; fi; \
		done

# The libFuzzer builds: every file but the mains compiled once with clang
# and the sanitizers into one archive, each target linked against it.
FUZZ_OBJ := $(BUILD)/libfuzzer/obj
FUZZ_LIB := $(BUILD)/libfuzzer/libslipway-fuzz.a
FUZZ_LIB_SRC := $(COMMON_SRC) common/http-curl.c $(filter-out builder/main.c,$(BUILDER_SRC)) $(filter-out bootserver/main.c,$(BOOTSERVER_SRC)) \
	$(filter-out agent/main.c,$(AGENT_SRC)) $(BUILD)/gen/initramfs-init.c $(BUILD)/gen/ui-assets.c
FUZZ_CFLAGS = $(filter-out -O2 -Werror,$(BASE_CFLAGS)) -O1 -g -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all $(call pc_cflags,$(PKGS_COMMON) $(PKGS_BUILDER) $(PKGS_BOOTSERVER))

$(FUZZ_OBJ)/%.o: %.c $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CLANG   $<")
	$(Q)clang $(FUZZ_CFLAGS) -Wno-missing-variable-declarations -MMD -MP -c $< -o $@

$(FUZZ_OBJ)/$(BUILD)/gen/ui-assets.o: FUZZ_CFLAGS += -Ibootserver

$(FUZZ_LIB): $(FUZZ_LIB_SRC:%.c=$(FUZZ_OBJ)/%.o)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libfuzzer/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/fuzz.h $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(FUZZ_INCLUDES) -o $@ $< $(FUZZ_LIB) $(BUILDER_LIBS) $(BOOTSERVER_LIBS) $(AGENT_LIBS)

# Every test make runs is told this run's file (tests/leftovers.sh): the
# suites write themselves down in it, and what they start inherits it.
ifndef SLIPWAY_TEST_RUN
SLIPWAY_TEST_RUN := $(CURDIR)/$(BUILD)/test-runs/$(shell date +%Y%m%d-%H%M%S)-$(shell echo $$PPID)
endif
export SLIPWAY_TEST_RUN

## make check         unit and integration tests (minutes); fails if a test left something running
check: test-layers test-unit test-fuzz-replay test-sim test-integration
	@tests/leftovers.sh

## make test-layers   slipwayd's layers: SQL only in the store, no include circle, short files; no libcurl in the agent
test-layers: $(BIN)/slipway-agent
	@tests/layers.sh

## make test-sim      the coordinator under the fleet simulator: 1,000 seeds and 3 big fleets
test-sim: $(BUILD)/fleet/sim
	@tests/fleet/run.sh

# The simulator's files share tests/fleet/sim.h; it links the real coordinator.
SIM_SRC := $(wildcard tests/fleet/sim*.c)
SIM_OBJ := $(SIM_SRC:%.c=$(OBJ)/%.o)
$(SIM_OBJ): ALL_CFLAGS += -Ibootserver

$(BUILD)/fleet/sim: $(SIM_OBJ) $(BOOTSERVER_LIB) $(LIBSLIPWAY) $(HTTP_CURL) $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(SIM_OBJ) $(HTTP_CURL) $(BOOTSERVER_LIB) $(LIBSLIPWAY) $(LDFLAGS) $(BOOTSERVER_LIBS) -lm

$(BUILD)/bench/checkins: tests/bench/checkins.c $(LIBSLIPWAY) $(HTTP_CURL) $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(HTTP_CURL) $(LIBSLIPWAY) $(LDFLAGS) -lcurl -ljansson -lcrypto -lpthread

# The same load generator on the agent's own HTTP client, to set beside libcurl.
$(BUILD)/bench/checkins-own: tests/bench/checkins.c $(LIBSLIPWAY) $(HTTP_OWN) $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(HTTP_OWN) $(LIBSLIPWAY) $(LDFLAGS) -ljansson -lssl -lcrypto -lpthread

# How many unit test binaries, and integration suites, run at once: most
# of their time is spent waiting on servers, not on the CPU. JOBS=1 runs
# them one by one.
JOBS ?= 2

## make test-unit     the unit test binaries, JOBS at a time (default 2)
test-unit: $(UNIT_BIN)
	@tests/run-unit.sh -j $(JOBS) $(UNIT_BIN)

INTEGRATION := $(filter-out tests/integration/boot.sh tests/integration/boot-base.sh,$(wildcard tests/integration/*.sh))

## make test-integration  the shell suites of tests/integration, JOBS at a time (default 2), the longest first
test-integration: all sample-repo $(BUILD)/bench/checkins
	@tests/run-integration.sh -j $(JOBS) $(INTEGRATION)

## make test          everything (what CI runs); fails if a test left something running
# The suites after check's own look for leftovers, then the last look.
# Slipway Base's repository (minutes of rpmbuild) is made while test-boot's
# VMs run, which do not need it, its output in build/base-repo.log;
# test-boot-base and test-e2e (tests/e2e/base.sh), which do, come after.
test: check
	@$(MAKE) --no-print-directory base-repo >$(BUILD)/base-repo.log 2>&1 & pid=$$!; \
	$(MAKE) --no-print-directory test-boot; rc=$$?; \
	if ! wait $$pid; then tail -n 20 $(BUILD)/base-repo.log; echo "make base-repo failed" >&2; rc=1; fi; \
	exit $$rc
	@$(MAKE) --no-print-directory test-boot-base test-e2e test-fleet test-ha
	@tests/leftovers.sh

## make test-fleet    500 slipway-agent processes in network namespaces through a rollout
test-fleet: all sample-repo
	@tests/fleet/agents.sh

## make test-ha       3 slipwayd on PostgreSQL with a standby, 200 agents: kills mid-rollout
test-ha: all sample-repo
	@tests/fleet/ha.sh

E2E := tests/e2e/run.sh tests/e2e/grub.sh tests/e2e/base.sh tests/e2e/base-bios.sh

## make test-e2e      VMs: PXE install, rollouts, a failing release, a power cut; GRUB under Secure Boot and BIOS;
##                    Slipway Base (systemd) over PXE through GRUB under UEFI and under BIOS: updates, a fallback,
##                    power cuts, host files rolled out and back; JOBS suites at a time (default 2), the longest first
test-e2e: all sample-repo base-repo
	@SLIPWAY_TEST_DURATIONS=$(CURDIR)/$(BUILD)/test-durations-e2e tests/run-integration.sh -j $(JOBS) $(E2E)

## make test-boot     build the sample image and boot it in qemu
test-boot: all sample-repo
	@tests/integration/boot.sh

## make test-boot-base  build Slipway Base (systemd, sshd) and boot its disk under OVMF (minutes)
test-boot-base: all base-repo
	@tests/integration/boot-base.sh

## make sample-repo   build the sample RPMs into build/sample-repo
sample-repo: $(BUILD)/sample-repo/repodata/repomd.xml

$(BUILD)/sample-repo/repodata/repomd.xml: images/sample-repo.sh images/sign-rpms.sh $(wildcard images/specs/*.spec) $(BIN)/slipway-agent | $(DEPS_OK)
	images/sample-repo.sh $(BUILD)/sample-repo $(BIN)/slipway-agent

## make base-repo     build the RPMs of Slipway Base (images/base.conf) into build/base-repo
base-repo: $(BUILD)/base-repo/repodata/repomd.xml

$(BUILD)/base-repo/repodata/repomd.xml: images/sample-repo.sh images/sign-rpms.sh $(wildcard images/specs/*.spec) \
		agent/slipway-agent.service agent/slipway-apply-files.service $(BIN)/slipway-agent | $(DEPS_OK)
	images/sample-repo.sh --base $(BUILD)/base-repo $(BIN)/slipway-agent

## make demo          the whole story: images, slipwayd, 50 simulated hosts, a rollout (DEMO=once exits)
demo: all sample-repo
	@tests/demo.sh

## make bench         speed figures against the peers
bench: all sample-repo $(BUILD)/fleet/sim $(BUILD)/bench/checkins $(BUILD)/bench/checkins-own
	@$(MAKE) --no-print-directory deps-bench
	@tests/bench/run.sh

deps-bench:
	@$(MAKE) --no-print-directory deps-extra EXTRA_DEBS="$(DEBS_BENCH)"

# Installs what is missing of EXTRA_DEBS: apt-get update first, then one
# install; nothing at all when every package is there.
deps-extra:
	@missing=""; for p in $(EXTRA_DEBS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: $(words $(EXTRA_DEBS)) Debian packages present"; \
	elif [ "$$(id -u)" != 0 ]; then echo "deps: missing and not root:$$missing" >&2; exit 1; \
	else echo "deps: installing$$missing"; apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $$missing; fi

## make install       install binaries and man pages (PREFIX, DESTDIR)
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0644 docs/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	sed 's|/usr/local/bin/|$(BINDIR)/|' bootserver/slipwayd.service >$(DESTDIR)$(PREFIX)/lib/systemd/system/slipwayd.service
	sed 's|/usr/local/bin/|$(BINDIR)/|' agent/slipway-agent.service >$(DESTDIR)$(PREFIX)/lib/systemd/system/slipway-agent.service
	sed 's|/usr/local/bin/|$(BINDIR)/|' agent/slipway-apply-files.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/system/slipway-apply-files.service
	install -d $(DESTDIR)$(PREFIX)/share/slipway/prometheus $(DESTDIR)$(PREFIX)/share/slipway/grafana
	install -m 0644 contrib/prometheus/slipway-alerts.yml contrib/prometheus/slipway-alerts.test.yml \
		$(DESTDIR)$(PREFIX)/share/slipway/prometheus/
	install -m 0644 contrib/grafana/slipway.json $(DESTDIR)$(PREFIX)/share/slipway/grafana/

clean:
	rm -rf $(BUILD)

-include $(shell find $(OBJ) $(FUZZ_OBJ) -name '*.d' 2>/dev/null)
