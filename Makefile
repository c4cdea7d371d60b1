# csnap build.  Sources are discovered by directory, so adding a file to a
# component never needs a Makefile edit:
#   utils/ ioengine/ lease/ src/{store,proto,server,agent,export,activate,send}/
#                              -> $(BUILD)/libcsnap.a
#   src/cli/*.c               -> linked whole into $(BUILD)/csnap
#   tests/unit/test_*.c       -> $(BUILD)/tests/test_*   (cmocka, one per file)
#   tests/tools/*.c           -> $(BUILD)/tools/*        (helpers for tests)
#   bench/*.c                 -> $(BUILD)/bench/*
# `make SAN=1 BUILD=build-san` builds the same with ASan + UBSan and the
# CSNAP_ASSERT invariant checks on; `make DEBUG=1` turns on the checks alone.
#   tests/fuzz/fuzz_*.c       -> build-fuzz/fuzz/fuzz_*  (libFuzzer, clang,
#                                ASan + UBSan; `make fuzz`, docs/fuzzing.md)

BUILD   ?= build
CC      ?= gcc
SAN     ?= 0

CFLAGS_WARN := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -Wformat=2 -Wno-format-truncation -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
CPPFLAGS_ALL := -D_GNU_SOURCE -I. $(CPPFLAGS)
# CSNAP_DEBUG turns on CSNAP_ASSERT (utils/assert.h): always in the
# sanitizer build, and with `make DEBUG=1`.
ifeq ($(SAN),1)
CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
DEBUG   := 1
endif
# FUZZ=1 (set by `make fuzz-build`): clang, coverage instrumentation for
# libFuzzer, ASan + UBSan, invariant checks on.
ifeq ($(FUZZ),1)
CC      := clang
CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
           -fno-sanitize-recover=undefined
# gcc's -Werror build is the warning gate; clang's different opinions
# (e.g. -Wformat-nonliteral through va_list) must not break this one
CFLAGS_WARN := $(filter-out -Werror,$(CFLAGS_WARN)) -Wno-unknown-warning-option
LDSAN   := -fsanitize=address,undefined
DEBUG   := 1
endif
ifeq ($(DEBUG),1)
CPPFLAGS_ALL += -DCSNAP_DEBUG
endif
LDLIBS  := -lsanlock -lwdmd -laio -lblkid -luuid -lsodium -lzstd -lgnutls -ldevmapper -lpthread -lrt

LIB_DIRS := utils ioengine lease src/store src/proto src/locate src/server src/agent src/export src/activate src/send
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CLI_SRCS := $(wildcard src/cli/*.c)
TEST_SRCS  := $(wildcard tests/unit/test_*.c)
TOOL_SRCS  := $(wildcard tests/tools/*.c)
BENCH_SRCS := $(wildcard bench/*.c)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
TESTS    := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOLS    := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
BENCHES  := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
FUZZERS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

.PHONY: all deps check check-long check-unit check-integration check-san check-kernel demo bench clean cppcheck install
.PHONY: fuzz fuzz-build fuzz-targets

all: $(BUILD)/csnap $(TESTS) $(TOOLS) $(BENCHES)

deps:
	@bash scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS_ALL) -DCSNAP_VERSION='"$(VERSION)"' $(CFLAGS_WARN) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libcsnap.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/csnap: $(CLI_OBJS) $(BUILD)/libcsnap.a
	$(CC) $(LDSAN) -o $@ $(CLI_OBJS) $(BUILD)/libcsnap.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libcsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(BUILD)/libcsnap.a -lcmocka $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/libcsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(BUILD)/libcsnap.a $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libcsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(BUILD)/libcsnap.a $(LDLIBS) -lm

# Fuzz targets (docs/fuzzing.md): libFuzzer supplies main().
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libcsnap.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -fsanitize=fuzzer,address,undefined -o $@ $< $(BUILD)/libcsnap.a $(LDLIBS)

.SECONDARY: $(FUZZ_SRCS:%.c=$(BUILD)/obj/%.o)
fuzz-targets: $(FUZZERS)

fuzz-build:
	@$(MAKE) --no-print-directory FUZZ=1 BUILD=build-fuzz fuzz-targets

# `make fuzz FUZZ_TIME=3600`: every target for FUZZ_TIME seconds in turn,
# FUZZ_TARGETS to pick some (names without the fuzz_ prefix).
FUZZ_TIME ?= 60
FUZZ_TARGETS ?= $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
fuzz: deps fuzz-build
	@bash tests/fuzz/run.sh long $(FUZZ_TIME) $(FUZZ_TARGETS)

# The README's test command: everything, then everything again under
# AddressSanitizer + UndefinedBehaviorSanitizer.  deps installed every
# tool the tests use, so CSNAP_DEPS_INSTALLED=1 makes a missing one a
# failure instead of a skip (tests/functions.sh: requires).
check: deps
	$(MAKE) all
	$(MAKE) SAN=1 BUILD=build-san all
	$(MAKE) fuzz-build
	$(MAKE) cppcheck
	@rm -f $(BUILD)/test-summary build-san/test-summary $(BUILD)/kernel-summary
	@export CSNAP_DEPS_INSTALLED=1; rc=0; tests/run.sh $(BUILD) all || rc=1; \
	 echo "== again under AddressSanitizer + UndefinedBehaviorSanitizer"; \
	 tests/run.sh build-san san || rc=1; \
	 echo "== activation on real nbd and device-mapper: a Debian kernel under qemu"; \
	 tests/kernel/run.sh $(BUILD) || rc=1; \
	 cat $(BUILD)/test-summary build-san/test-summary $(BUILD)/kernel-summary | \
	   awk '{p+=$$1; f+=$$2; s+=$$3} END {print "== all tests"; print p " passed, " f " failed, " s " skipped"}'; \
	 exit $$rc

# Longer soaks (issue 9): KILLS (default 200) kill -9 of the master under the
# verified 3-node workload, with snapshot creates and deletes, export and
# agent kills (tests/long/kill_soak.sh; `make check` runs 10 of them); then
# CUTS (default 3000) whole-cluster power cuts replayed from a recorded run
# (tests/integration/cluster_powercut.sh; `make check` replays 300).
KILLS ?= 200
CUTS ?= 3000
check-long: all
	CSNAP_BUILD=$(abspath $(BUILD)) CSNAP_SRC=$(CURDIR) CSNAP_DEPS_INSTALLED=1 KILLS=$(KILLS) \
	  bash tests/long/kill_soak.sh
	CSNAP_BUILD=$(abspath $(BUILD)) CSNAP_SRC=$(CURDIR) CSNAP_DEPS_INSTALLED=1 CUTS=$(CUTS) \
	  bash tests/integration/cluster_powercut.sh

check-unit: all
	tests/run.sh $(BUILD) unit

check-integration: all fuzz-build
	tests/run.sh $(BUILD) integration

# csnap activate on real nbd and device-mapper: a Debian kernel booted
# under qemu with a two-node cluster inside (tests/kernel/).
check-kernel: all
	tests/kernel/run.sh $(BUILD)

check-san:
	$(MAKE) SAN=1 BUILD=build-san all
	tests/run.sh build-san san

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -D_GNU_SOURCE -I. $(LIB_DIRS) src/cli

demo: deps
	$(MAKE) all
	bash scripts/demo.sh $(BUILD)

# `make bench [BENCH_QUICK=1]`: every benchmark against its peers in one
# run; writes bench/results/ (latest.md, latest.json, plots) and the
# README's generated performance table (bench/run.sh, bench/README.md).
bench: all
	@bash scripts/install-deps.sh bench
	BENCH_QUICK=$(BENCH_QUICK) bash bench/run.sh $(BUILD)

# `make install [PREFIX=/usr] [DESTDIR=...]`: the binary, man pages, udev
# rules, systemd units and bash completion; unit and rule files name the
# installed binary.
PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
UDEVDIR     ?= $(PREFIX)/lib/udev/rules.d
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DOCDIR      ?= $(PREFIX)/share/doc/csnap

install: $(BUILD)/csnap
	install -D -m 0755 $(BUILD)/csnap $(DESTDIR)$(SBINDIR)/csnap
	install -D -m 0644 man/csnap.8 $(DESTDIR)$(MANDIR)/man8/csnap.8
	install -D -m 0644 man/csnap.conf.5 $(DESTDIR)$(MANDIR)/man5/csnap.conf.5
	install -d $(DESTDIR)$(UDEVDIR) $(DESTDIR)$(UNITDIR)
	for r in contrib/*.rules; do \
	  sed 's|/usr/sbin/csnap|$(SBINDIR)/csnap|g' $$r > $(DESTDIR)$(UDEVDIR)/$$(basename $$r) || exit 1; \
	done
	for u in contrib/*.service; do \
	  sed 's|/usr/sbin/csnap|$(SBINDIR)/csnap|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -D -m 0644 contrib/csnap.bash-completion $(DESTDIR)$(BASHCOMPDIR)/csnap
	install -D -m 0644 csnap.conf.example $(DESTDIR)$(DOCDIR)/csnap.conf.example

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
