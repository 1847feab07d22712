# zhv: GNU make build. `make` builds libzhv, the zhv VMM, tests and benchmarks;
# `make test` runs every test; `make sanitize` runs them under ASan + UBSan;
# `make tsan` runs them under ThreadSanitizer.

.DEFAULT_GOAL := all

BUILD   ?= build
CC      ?= cc
WERROR  ?= 1
# SAN=1: ASan + UBSan; SAN=thread: ThreadSanitizer
SAN     ?= 0

CPPFLAGS += -Iinclude -Ilib -D_GNU_SOURCE -MD -MP
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
            -Wshadow -Wno-unused-parameter -fno-strict-aliasing -pthread
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
# -Wno-tsan: TSAN does not model fences (gcc warns about each one). Ours
# order the VMM's accesses to guest memory against the guest's vCPUs,
# which TSAN cannot see anyway (vmm/dev/virtqueue.c).
ifeq ($(SAN),thread)
CFLAGS   += -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
LDFLAGS  += -fsanitize=thread
endif
LDLIBS   += -pthread

# ---- libzhv ----------------------------------------------------------------
LIB_SRCS := lib/status.c lib/log.c lib/time.c lib/id_alloc.c lib/irq_tracker.c \
            lib/trap_map.c lib/port.c lib/guest.c lib/memory.c lib/vcpu.c \
            lib/x86/decode.c lib/x86/insn_cache.c lib/x86/cpuid.c lib/x86/msr.c lib/x86/exit.c \
            lib/x86/emulate.c lib/x86/debug.c lib/x86/vcpu_state.c lib/x86/vcpu_snapshot.c \
            lib/vcpu_blob.c lib/snapshot.c \
            lib/host.c lib/solib.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
# Where the compiler finds Zydis: libzhv looks there first (lib/x86/decode.c).
ZYDIS_SO := $(shell $(CC) -print-file-name=libZydis.so.4.0)
ifneq ($(filter /%,$(ZYDIS_SO)),)
$(BUILD)/lib/x86/decode.o: CPPFLAGS += -DZHV_ZYDIS_DIR='"$(patsubst %/,%,$(dir $(ZYDIS_SO)))"'
endif
LIBZHV   := $(BUILD)/libzhv.a

# ---- tests -----------------------------------------------------------------
UNIT_SRCS  := $(wildcard tests/unit/*_test.c)
UNIT_BINS  := $(UNIT_SRCS:%.c=$(BUILD)/%)
CONF_SRCS  := $(wildcard tests/conformance/*.c) $(wildcard tests/conformance/*.S)
CONF_OBJS  := $(patsubst %,$(BUILD)/%.o,$(basename $(CONF_SRCS)))
CONF_BIN   := $(BUILD)/tests/conformance/conformance
TLIB_SRCS  := $(wildcard tests/lib/*.c)
TLIB_OBJS  := $(TLIB_SRCS:%.c=$(BUILD)/%.o)

EXAMPLE_BIN := $(BUILD)/examples/hello_guest
TOOL_BINS   := $(BUILD)/tools/cpuid_report

# Optional parts: each directory adds itself if present.
-include vmm/build.mk
-include bench/build.mk
-include fuzz/build.mk
-include mk/install.mk

# ThreadSanitizer cannot link statically: the start-up benchmark's
# harness is then dynamic, as under ASan (bench/build.mk).
ifeq ($(SAN),thread)
VMMB_STATIC :=
endif

.PHONY: all lib tests test sanitize tsan clean deps run
all: lib tests $(EXAMPLE_BIN) $(TOOL_BINS) $(VMM_BIN) $(BENCH_BINS)
lib: $(LIBZHV)
tests: $(UNIT_BINS) $(CONF_BIN) $(VMM_TEST_BINS)

$(LIBZHV): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBZHV) -lcmocka $(LDLIBS)

$(CONF_BIN): $(CONF_OBJS) $(TLIB_OBJS) $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $(CONF_OBJS) $(TLIB_OBJS) $(LIBZHV) $(LDLIBS)

$(EXAMPLE_BIN): $(BUILD)/examples/hello_guest.o $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBZHV) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBZHV) $(LDLIBS)

test: all
	BUILD=$(BUILD) tests/run-tests.sh

sanitize:
	$(MAKE) BUILD=build-san SAN=1 test

# The same suite built with ThreadSanitizer. tests/run-tests.sh sets
# TSAN_OPTIONS so that every report fails the run, and collects the
# reports of every process (forked test children and zhv runs included).
tsan:
	$(MAKE) BUILD=build-tsan SAN=thread test

# The main job: boot the bundled guest on 4 vCPUs with a small disk.
RUN_DISK := $(BUILD)/run-disk.img
$(RUN_DISK):
	@mkdir -p $(@D)
	printf 'Hello from the virtio disk of zhv run\n' > $@
	truncate -s 1M $@

# Without /dev/kvm (a machine whose kernel is itself a guest), zhv runs on
# a real KVM inside QEMU's emulated AMD-V (tools/kvm-in-qemu.sh).
run: all $(RUN_DISK)
	@if [ -e /dev/kvm ]; then \
		$(VMM_BIN) run --cpus 4 --memory 64M --disk $(RUN_DISK) $(GUEST_ELF); \
	else \
		echo "no /dev/kvm: running zhv inside tools/kvm-in-qemu.sh" >&2; \
		tools/kvm-in-qemu.sh -- $(VMM_BIN) run --cpus 4 --memory 64M --disk $(RUN_DISK) $(GUEST_ELF); \
	fi

# The Debian packages the build, tests and packaging need (tools/deps.sh:
# apt-get as root, through sudo for any other user).
deps:
	tools/deps.sh

clean:
	rm -rf build build-san build-tsan build-fuzz build-deb

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
