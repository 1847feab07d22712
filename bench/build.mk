# bench/build.mk: the libzhv benchmarks (included by the top Makefile).
# Each benchmark compares libzhv with raw KVM ioctls in the same process;
# bench/run.sh builds and runs them all and prints a table.

# The build.mk files are included before the top Makefile's first rule, so
# the first explicit target in them would become make's default goal (the
# top Makefile means `make` to build `all`). Keep it `all`.


BENCH_NAMES  := io_roundtrip kick_latency create_destroy
BENCH_BINS   := $(BENCH_NAMES:%=$(BUILD)/bench/%)
BENCH_COMMON := $(BUILD)/bench/stats.o $(BUILD)/bench/raw_kvm.o

$(BENCH_BINS): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_COMMON) $(LIBZHV)
	$(CC) $(LDFLAGS) -o $@ $< $(BENCH_COMMON) $(LIBZHV) $(LDLIBS)

.PHONY: bench
bench: $(BENCH_BINS)
