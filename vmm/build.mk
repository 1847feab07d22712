# vmm/build.mk: the zhv VMM, its bundled guest and the end-to-end test
# kernels (included by the top Makefile).

CPPFLAGS += -Ivmm

VMM_SRCS := $(wildcard vmm/*.c vmm/dev/*.c vmm/loader/*.c vmm/gdb/*.c)
VMM_OBJS := $(VMM_SRCS:%.c=$(BUILD)/%.o)
VMM_BIN  := $(BUILD)/zhv

# zhv is linked statically: no dynamic loader, no shared C library to map
# and relocate at each start (about a third of the start-up of a tiny
# guest, issue 11; libzhv loads Zydis itself, lib/solib.h). Sanitizer
# builds cannot link statically.
VMM_STATIC := -static-pie
ifneq ($(SAN),0)
VMM_STATIC :=
endif
$(VMM_BIN): $(VMM_OBJS) $(LIBZHV) | $(BUILD)/guest/guest.elf
	$(CC) $(LDFLAGS) $(VMM_STATIC) -o $@ $(VMM_OBJS) $(LIBZHV) -luring $(LDLIBS)

# The sandbox's seccomp filters, compiled at build time by libseccomp
# (vmm/gen/sandbox_gen.c) into a header of BPF programs: zhv loads them
# as they are, without libseccomp.
SANDBOX_GEN := $(BUILD)/vmm/gen/sandbox_gen
SANDBOX_BPF := $(BUILD)/vmm/sandbox_bpf.h
$(SANDBOX_GEN): vmm/gen/sandbox_gen.c vmm/sandbox_bpf_abi.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lseccomp $(LDLIBS)
$(SANDBOX_BPF): $(SANDBOX_GEN)
	$(SANDBOX_GEN) >$@.tmp && mv $@.tmp $@
$(BUILD)/vmm/sandbox.o $(BUILD)/tests/unit/sandbox_test.o: $(SANDBOX_BPF)
$(BUILD)/vmm/sandbox.o $(BUILD)/tests/unit/sandbox_test.o: CPPFLAGS += -I$(BUILD)/vmm

# ---- guest code: freestanding 32-bit, no SSE/x87 --------------------------
# Guest CPL0 code is emulated instruction by instruction on our KVM, and the
# emulator lacks SSE arithmetic, x87, popcnt and friends
# (shared/spec/kvm-on-this-machine.md, section 2): plain i686 integer code
# only, without CET's endbr32 either. Sanitizer flags never apply here.
GUEST_CC       ?= gcc
GUEST_LD       ?= ld
GUEST_CPPFLAGS := -MD -MP
GUEST_CFLAGS   := -m32 -march=i686 -std=c11 -O2 -ffreestanding -fno-pic -fno-pie \
                  -fno-stack-protector -fcf-protection=none -mgeneral-regs-only \
                  -mno-red-zone -fno-asynchronous-unwind-tables -fno-unwind-tables \
                  -fno-tree-loop-distribute-patterns \
                  -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Werror
GUEST_LDFLAGS  := -m elf_i386 -nostdlib -static --build-id=none -z max-page-size=0x1000 \
                  -z noexecstack --no-warn-rwx-segments

# ---- the freestanding runtime (rt/) -----------------------------------------
# One runtime for the bundled guest and the test kernels (rt/rt.h): built
# once per build directory as crt0.o (the multiboot entry) and the archive
# librt.a (everything else: a program links only what it uses), linked by
# rt/kernel.ld at 1 MiB unless TK_BASE_NAME gives another address.
RT_DIR    := rt
RT_SRCS   := $(filter-out $(RT_DIR)/crt0.S,$(wildcard $(RT_DIR)/*.c $(RT_DIR)/*.S))
RT_OBJS   := $(patsubst %,$(BUILD)/%.o,$(basename $(RT_SRCS)))
RT_CRT0   := $(BUILD)/$(RT_DIR)/crt0.o
RT_LIB    := $(BUILD)/$(RT_DIR)/librt.a
RT_LD     := $(RT_DIR)/kernel.ld
RT_CFLAGS := -I$(RT_DIR)

TK_DIR    := tests/vmm/kernels

# Every freestanding object: the runtime, the guest, the test kernels.
FS_SRCS   := $(wildcard $(RT_DIR)/*.c $(RT_DIR)/*.S guest/*.c guest/*.S $(TK_DIR)/*.c $(TK_DIR)/*.S)
FS_C_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter %.c,$(FS_SRCS)))
FS_S_OBJS := $(patsubst %.S,$(BUILD)/%.o,$(filter %.S,$(FS_SRCS)))

$(FS_C_OBJS): $(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CPPFLAGS) $(RT_CFLAGS) $(GUEST_CFLAGS) -c -o $@ $<

$(FS_S_OBJS): $(BUILD)/%.o: %.S
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CPPFLAGS) $(RT_CFLAGS) $(GUEST_CFLAGS) -c -o $@ $<

$(RT_LIB): $(RT_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# rt_link NAME: link $@ from the objects in $^ that are not the runtime.
rt_link = $(GUEST_LD) $(GUEST_LDFLAGS) $(if $(TK_BASE_$(1)),--defsym=rt_link_base=$(TK_BASE_$(1))) \
	-T $(RT_LD) -o $@ $(RT_CRT0) $(filter-out $(RT_CRT0) $(RT_LIB) $(RT_LD),$^) $(RT_LIB)

# The bundled default guest (guest/): multiboot v1 ELF32 at 1 MiB.
GUEST_SRCS := $(wildcard guest/*.c guest/*.S)
GUEST_OBJS := $(patsubst %,$(BUILD)/%.o,$(basename $(GUEST_SRCS)))
GUEST_ELF  := $(BUILD)/guest/guest.elf

$(GUEST_ELF): $(GUEST_OBJS) $(RT_CRT0) $(RT_LIB) $(RT_LD)
	$(call rt_link,guest)

# ---- test kernels (tests/vmm/kernels/) ----------------------------------------
# Each tests/vmm/kernels/NAME.c or NAME.S becomes build/tests/vmm/kernels/
# NAME.elf, linked with the runtime (rt/: multiboot header, stack, UART
# output, port I/O, exit through port 0xf4).
TK_SRCS    := $(wildcard $(TK_DIR)/*.c $(TK_DIR)/*.S)
TK_ELFS    := $(patsubst %,$(BUILD)/%.elf,$(basename $(TK_SRCS)))

# A kernel links at 1 MiB unless TK_BASE_NAME gives another address.
TK_BASE_lowmem := 0x8000

# tests/vmm/gdb.sh debugs this one by its symbols and variables: with
# debug information, and optimized less so that they stay where GDB looks.
$(BUILD)/$(TK_DIR)/gdb_guest.o: GUEST_CFLAGS += -g -O1

$(BUILD)/$(TK_DIR)/%.elf: $(BUILD)/$(TK_DIR)/%.o $(RT_CRT0) $(RT_LIB) $(RT_LD)
	$(call rt_link,$*)

# Keep the test kernels' objects (make would delete them as intermediates).
.SECONDARY: $(TK_ELFS:.elf=.o) $(RT_OBJS) $(RT_CRT0)

VMM_TEST_BINS := $(GUEST_ELF) $(TK_ELFS)

# ---- soak tests (tests/soak/, run by tests/vmm/soak.sh) ------------------------
# soak_lib: libzhv alone; soak_board: the VMM's objects but main.c, with the
# soak test kernel (tests/vmm/kernels/soak.c).
SOAK_LIB_BIN   := $(BUILD)/tests/soak/soak_lib
SOAK_BOARD_BIN := $(BUILD)/tests/soak/soak_board
VMM_LIB_OBJS   := $(filter-out $(BUILD)/vmm/main.o,$(VMM_OBJS))

$(SOAK_LIB_BIN): $(BUILD)/tests/soak/soak_lib.o $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBZHV) $(LDLIBS)

$(SOAK_BOARD_BIN): $(BUILD)/tests/soak/soak_board.o $(VMM_LIB_OBJS) $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(VMM_LIB_OBJS) $(LIBZHV) -luring $(LDLIBS)

VMM_TEST_BINS += $(SOAK_LIB_BIN) $(SOAK_BOARD_BIN)
# virtio-blk submits through io_uring (tests/unit/virtio_blk_test.c includes vmm/dev/virtio_blk.c).
$(BUILD)/tests/unit/virtio_blk_test: LDLIBS += -luring

# What the sandbox's filters cost per system call (no KVM needed); built
# with the tests so that it stays buildable. Run: $(BUILD)/bench/sandbox_cost
SANDBOX_COST_BIN := $(BUILD)/bench/sandbox_cost
$(SANDBOX_COST_BIN): $(BUILD)/bench/sandbox_cost.o $(BUILD)/vmm/sandbox.o $(BUILD)/bench/stats.o $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
VMM_TEST_BINS += $(SANDBOX_COST_BIN)

# What CPU the tests run on (tests/vmm/lib/host_cpu.c), for quirk gates in
# the scripts.
HOST_CPU_BIN := $(BUILD)/tests/vmm/host_cpu
$(HOST_CPU_BIN): tests/vmm/lib/host_cpu.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<
VMM_TEST_BINS += $(HOST_CPU_BIN)
