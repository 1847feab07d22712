# bench/build.mk: the libzhv benchmarks (included by the top Makefile).
# Each benchmark compares libzhv with raw KVM ioctls in the same process;
# bench/run.sh builds and runs them all and prints a table.

# The build.mk files are included before the top Makefile's first rule, so
# the first explicit target in them would become make's default goal (the
# top Makefile means `make` to build `all`). Keep it `all`.


BENCH_NAMES  := io_roundtrip bell_roundtrip kick_latency create_destroy snapshot_reset
BENCH_BINS   := $(BENCH_NAMES:%=$(BUILD)/bench/%)
BENCH_COMMON := $(BUILD)/bench/stats.o $(BUILD)/bench/raw_kvm.o

$(BENCH_BINS): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_COMMON) $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(BENCH_COMMON) $(LIBZHV) $(LDLIBS)

.PHONY: bench
bench: $(BENCH_BINS)

# ---- VMM start-up benchmark (bench/vmm_startup.sh) -----------------------
# Process start -> first COM1 byte of a tiny guest, and peak RSS, for
# `zhv run`, a raw-KVM C VMM and QEMU microvm. None of these link libzhv:
#   raw_first_byte   the raw-KVM baseline VMM (plain ioctls, bench/raw_kvm.c);
#                    raw_first_byte_static is the same, linked statically
#   first_byte_timer the harness (posix_spawn -> first byte on a pipe ->
#                    wait4 rusage); static and small, because a child's
#                    ru_maxrss includes the spawning process's peak RSS
#   spawn_floor      a libc-free host program that prints the byte at once:
#                    the spawn+exec floor of both time and ru_maxrss
#   tiny/tiny.elf    the tiny guest (multiboot v1 ELF32)
VMMB_BINS := $(BUILD)/bench/raw_first_byte $(BUILD)/bench/raw_first_byte_static \
             $(BUILD)/bench/first_byte_timer $(BUILD)/bench/spawn_floor
VMMB_TINY := $(BUILD)/bench/tiny/tiny.elf

# A static harness keeps the ru_maxrss floor low; sanitizer builds cannot
# link statically (the harness then still works, with a higher floor).
ifneq ($(SAN),1)
VMMB_STATIC := -static
endif

$(BUILD)/bench/raw_first_byte: $(BUILD)/bench/raw_first_byte.o $(BUILD)/bench/raw_kvm.o
	$(CC) $(LDFLAGS) -o $@ $^

# The same VMM linked statically (diagnostic: what dynamic loading costs).
$(BUILD)/bench/raw_first_byte_static: $(BUILD)/bench/raw_first_byte.o $(BUILD)/bench/raw_kvm.o
	$(CC) $(LDFLAGS) $(VMMB_STATIC) -o $@ $^

$(BUILD)/bench/first_byte_timer: $(BUILD)/bench/first_byte_timer.o $(BUILD)/bench/stats.o
	$(CC) $(LDFLAGS) $(VMMB_STATIC) -o $@ $^ -pthread

$(BUILD)/bench/spawn_floor: bench/spawn_floor.S
	@mkdir -p $(@D)
	$(CC) -nostdlib -static -no-pie -Wl,--build-id=none -o $@ $<

# The tiny guest: built like the bundled guest (GUEST_* from vmm/build.mk).
$(BUILD)/bench/tiny/%.o: bench/tiny/%.S
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CPPFLAGS) $(GUEST_CFLAGS) -c -o $@ $<

$(VMMB_TINY): $(BUILD)/bench/tiny/tiny.o bench/tiny/tiny.ld
	$(GUEST_LD) $(GUEST_LDFLAGS) -T bench/tiny/tiny.ld -o $@ $<

.SECONDARY: $(BUILD)/bench/tiny/tiny.o

.PHONY: vmm-startup-bench
vmm-startup-bench: $(VMMB_BINS) $(VMMB_TINY) $(VMM_BIN)

# Built by `make` (all) and `make bench` with the other benchmarks.
BENCH_BINS += $(VMMB_BINS) $(VMMB_TINY)
