# fuzz/build.mk: the libFuzzer targets (included by the top Makefile).
# `make fuzz FUZZ_SECONDS=N` builds them with clang in $(FUZZ_BUILD) and
# runs each for N seconds (fuzz/run.sh); `make fuzz-build` only builds.

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := loader virtqueue virtio_blk virtio_net virtio_console virtio_rng pci snapshot \
                fw_cfg decode pagewalk trap_map emulate gdb_rsp
# Targets that call libzhv (the others compile the code under test in).
FUZZ_LIBZHV  := decode pagewalk trap_map emulate
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

# SAN=fuzz: coverage for libFuzzer, AddressSanitizer and UBSan everywhere
# (libzhv included), every UBSan report fatal. Clang calls libzhv's
# struct kvm_xsave member (a flexible array in a struct's middle, as KVM's
# header has it) a GNU extension, which GCC accepts silently.
ifeq ($(SAN),fuzz)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer -Wno-gnu-variable-sized-type-not-at-end
endif

$(FUZZ_LIBZHV:%=$(BUILD)/fuzz/%): $(LIBZHV)
# virtio_blk.c refers to liburing (unused there: no_device_threads).
$(BUILD)/fuzz/virtio_blk: LDLIBS += -luring
.SECONDARY: $(FUZZ_BINS:%=%.o)

$(BUILD)/fuzz/%: $(BUILD)/fuzz/%.o
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.o %.a,$^) $(LDLIBS)

.PHONY: fuzz fuzz-build fuzz-bins
fuzz-bins: $(FUZZ_BINS)

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN=fuzz fuzz-bins

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
