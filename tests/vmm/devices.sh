#!/usr/bin/env bash
# devices.sh: every device of zhv's PC, exercised from the guest side by
# the dev_* test kernels (tests/vmm/kernels/dev_*.c): UART, PIT, RTC,
# I/O APIC (also routed to a second vCPU; level-triggered inputs delivered
# again at the local APIC's EOI), ACPI tables and S5 power-off,
# the MP table, fw_cfg, SMP bring-up of 1-32 vCPUs, virtio-blk read/write
# and read-only (the script checks the image afterwards), i8042, PIC,
# legacy ports, the PCI host bridge, virtio-rng and isa-debug-exit.
#
# A kernel prints "group NAME: ok" after each group of checks and PASS at
# the end (debug-exit status 65); a failed check prints "FAIL: why" and
# exits with 67. One TAP line per group, plus one for the run's status.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
MEM=32M
need_binaries "$ZHV" "$K/dev_uart.elf" "$K/dev_pit.elf" "$K/dev_rtc.elf" "$K/dev_ioapic.elf" \
	"$K/dev_acpi.elf" "$K/dev_fwcfg.elf" "$K/dev_smp.elf" "$K/dev_blk.elf" \
	"$K/dev_legacy.elf" "$K/dev_exit.elf" "$K/dev_irq_lines.elf"

if ! kvm_or_skip "device tests"; then
	finish
fi

# passed: the last run's kernel passed every check.
passed() { status_is 65 && out_has PASS && out_lacks FAIL; }
# groups LABEL GROUP...: one TAP line per group the last run must report.
groups() {
	local label=$1 g
	shift
	for g in "$@"; do
		check "$label: $g" grep -qxF "group $g: ok" "$T/out"
	done
}
# run_zhv_input DATA ARGS...: run_zhv with DATA on zhv's stdin.
run_zhv_input() {
	local data=$1
	shift
	last_cmd="printf '$data' | zhv $*"
	local t0 t1
	t0=$(date +%s.%N)
	printf '%s' "$data" | timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" "$@" >"$T/out" 2>"$T/err"
	status=$?
	t1=$(date +%s.%N)
	elapsed=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
}
t_start=$(date +%s.%N)

# ---- UART ----------------------------------------------------------------------
run_zhv run --debug-exit --memory $MEM "$K/dev_uart.elf"
check "uart: kernel passes (status 65, ${elapsed}s)" passed
groups uart uart-scratch uart-dlab uart-lsr-ier uart-thre-irq uart-thre-rearm uart-loopback
check "uart: loopback bytes stay inside the UART" out_lacks "LOOPBACK-ONLY"
run_zhv_input 'Hi!' run --debug-exit --memory $MEM --cmdline rx=1 "$K/dev_uart.elf"
check "uart: stdin bytes arrive with the received-data interrupt (${elapsed}s)" passed
groups uart uart-rx-host

# ---- PIT -------------------------------------------------------------------------
run_zhv run --debug-exit --memory $MEM "$K/dev_pit.elf"
check "pit: kernel passes (status 65, ${elapsed}s)" passed
groups pit pit-mode2-irq0 pit-mode0-oneshot pit-channel2-port61

# ---- RTC -------------------------------------------------------------------------
run_zhv run --debug-exit --memory $MEM --cpus 2 \
	--cmdline "ymd=0x$(date -u +%Y%m%d) hm=0x$(date -u +%H%M) mem=32 cpus=2" "$K/dev_rtc.elf"
check "rtc: kernel passes (status 65, ${elapsed}s)" passed
groups rtc rtc-status rtc-cmos rtc-time rtc-formats rtc-set rtc-update-alarm-irq8 \
	rtc-periodic-irq8 rtc-reg-c-clears

# ---- I/O APIC ----------------------------------------------------------------------
run_zhv run --debug-exit --memory $MEM --cmdline "cpus=1" "$K/dev_ioapic.elf"
check "ioapic: kernel passes with 1 vCPU (status 65, ${elapsed}s)" passed
groups ioapic ioapic-id ioapic-rte ioapic-masked ioapic-edge ioapic-level
run_zhv run --debug-exit --memory $MEM --cpus 2 --cmdline "cpus=2" "$K/dev_ioapic.elf"
check "ioapic: kernel passes with 2 vCPUs (status 65, ${elapsed}s)" passed
groups "ioapic, 2 vCPUs" ioapic-other-cpu
# A level input still high at the local APIC's EOI comes again (EOI packets
# from libzhv).
run_zhv run --debug-exit --memory $MEM --cmdline "intx=0" "$K/dev_irq_lines.elf"
check "ioapic: local APIC EOI re-delivers a level input (status 65, ${elapsed}s)" passed
groups ioapic level-eoi-lapic

# ---- ACPI and the MP table: the run ends with S5 power-off (status 0) ----------------
for n in 1 4; do
	run_zhv run --debug-exit --memory $MEM --cpus $n --cmdline "cpus=$n" "$K/dev_acpi.elf"
	check "acpi, $n vCPUs: S5 power-off ends the run with status 0 (${elapsed}s)" \
		eval 'status_is 0 && out_has "acpi: powering off" && out_lacks FAIL'
	check "acpi, $n vCPUs: the MADT lists exactly $n enabled local APICs" \
		out_has "acpi: MADT: $n local APICs ($n enabled), 1 I/O APIC"
	groups "acpi, $n vCPUs" acpi-rsdp acpi-xsdt acpi-fadt acpi-dsdt acpi-madt mptable acpi-pm-regs
done

run_zhv run --debug-exit --memory $MEM --cpus 2 --cmdline "cpus=2 reset=1" "$K/dev_acpi.elf"
check "acpi: a write to the FADT's reset register ends the run with status 0 (${elapsed}s)" \
	eval 'status_is 0 && out_has "acpi: resetting through port cf9 with 6" && out_lacks FAIL'

# ---- fw_cfg ----------------------------------------------------------------------------
run_zhv run --debug-exit --memory $MEM --cmdline "cpus=1 mem=32" "$K/dev_fwcfg.elf"
check "fw_cfg, 1 vCPU, 32M: kernel passes (status 65, ${elapsed}s)" passed
groups "fw_cfg, 1 vCPU" fwcfg-signature fwcfg-nb-cpus fwcfg-ram-size fwcfg-unknown-key
run_zhv run --debug-exit --memory 48M --cpus 3 --cmdline "cpus=3 mem=48" "$K/dev_fwcfg.elf"
check "fw_cfg, 3 vCPUs, 48M: NB_CPUS and RAM_SIZE follow the options" passed
groups "fw_cfg, 3 vCPUs" fwcfg-nb-cpus fwcfg-ram-size

# ---- SMP bring-up ------------------------------------------------------------------------
# On QEMU's software CPU (tools/kvm-in-qemu.sh) an interrupt is now and then
# delivered twice (README, "Tests"): a run that counted exactly one IPI
# more runs once more there, the first reported; anywhere else it fails.
host_cpu=$("$BUILD/tests/vmm/host_cpu" 2>/dev/null)
smp_ok() {
	passed && out_has "smp: $((n - 1)) of $((n - 1)) APs up" &&
		out_has "smp: IPIs: $((n - 1)) to the BSP, $((n - 1)) to the APs"
}
for n in 1 2 8 32; do
	run_zhv run --debug-exit --memory $MEM --cpus $n --cmdline "cpus=$n" "$K/dev_smp.elf"
	if ! smp_ok && [ "${host_cpu#* }" = qemu-tcg ] &&
		{ out_has "smp: IPIs: $n to the BSP, $((n - 1)) to the APs" ||
		  out_has "smp: IPIs: $((n - 1)) to the BSP, $n to the APs"; }; then
		echo "# QEMU TCG quirk (an interrupt delivered twice): $(grep "smp: IPIs" "$T/out"); once more"
		run_zhv run --debug-exit --memory $MEM --cpus $n --cmdline "cpus=$n" "$K/dev_smp.elf"
	fi
	check "smp, $n vCPUs: all $((n - 1)) APs check in, IPIs both ways (${elapsed}s)" smp_ok
done

# ---- virtio-blk ---------------------------------------------------------------------------
# Sector s of the image holds "disk sector SSS\n" 32 times; the guest
# writes "guest wrote SSS\n" x 32 to sectors 5 and 6.
sectors=128
disk_image() { awk -v n=$sectors 'BEGIN { for (s = 0; s < n; s++) for (i = 0; i < 32; i++)
	printf "disk sector %03d\n", s }'; }
disk_image >"$T/blk-rw.img"
disk_image >"$T/blk-ro.img"
{
	disk_image | head -c $((5 * 512))
	for s in 5 6; do
		awk -v s=$s 'BEGIN { for (i = 0; i < 32; i++) printf "guest wrote %03d\n", s }'
	done
	disk_image | tail -c +$((7 * 512 + 1))
} >"$T/blk-rw.expected"
cp "$T/blk-ro.img" "$T/blk-ro.orig"

run_zhv run --debug-exit --memory $MEM --disk "$T/blk-rw.img" \
	--cmdline "sectors=$sectors ro=0 idlen=10" "$K/dev_blk.elf"
check "virtio-blk: kernel passes (status 65, ${elapsed}s)" passed
groups virtio-blk blk-pci blk-features blk-read blk-write blk-errors blk-msix blk-intx blk-reset
check "virtio-blk: the image holds the guest's sectors 5-6 and nothing else changed" \
	cmp "$T/blk-rw.img" "$T/blk-rw.expected"
check "virtio-blk: sector 5 on disk is the guest's" \
	eval '[ "$(dd if="$T/blk-rw.img" bs=512 skip=5 count=1 2>/dev/null | head -c 16)" = "guest wrote 005" ]'

chmod a-w "$T/blk-ro.img"
run_zhv run --debug-exit --memory $MEM --disk "$T/blk-ro.img,ro" \
	--cmdline "sectors=$sectors ro=1 idlen=10" "$K/dev_blk.elf"
check "virtio-blk read-only: kernel passes (status 65, ${elapsed}s)" passed
groups "virtio-blk read-only" blk-features blk-read blk-ro-write-fails blk-errors blk-reset
check "virtio-blk read-only: the image is unchanged" cmp "$T/blk-ro.img" "$T/blk-ro.orig"

# ---- i8042, PIC, legacy ports, PCI host bridge, virtio-rng ------------------------------------
run_zhv run --debug-exit --memory $MEM "$K/dev_legacy.elf"
check "legacy devices: kernel passes (status 65, ${elapsed}s)" passed
groups legacy i8042 pic legacy-ports pci-host virtio-rng

# ---- isa-debug-exit ---------------------------------------------------------------------------
for cw in 0:1 1:2 0x2a:4 0x7f:4 0x7f:1 0x2a:2; do
	code=${cw%:*} width=${cw#*:}
	want=$(((code << 1 | 1) & 255))
	run_zhv run --debug-exit --memory $MEM --cmdline "code=$code width=$width" "$K/dev_exit.elf"
	check "debug-exit $code ($width-byte write): status $want" \
		eval 'status_is $want && out_has "exit: writing" && out_lacks FAIL'
done

# ---- shared INTx lines: devices on one GSI are wired-OR (vm_irq_set_shared) ------
# Eight disks put virtio-rng in PCI slot 9, sharing GSI 17 with the disk in
# slot 1: one device lowering its line must not hide the other's.
args=()
for i in 0 1 2 3 4 5 6 7; do
	truncate -s 4096 "$T/share$i.img"
	args+=(--disk "$T/share$i.img")
done
run_zhv run --debug-exit --memory $MEM --cmdline "level=0" "${args[@]}" "$K/dev_irq_lines.elf"
check "pci: two devices on one INTx GSI (status 65, ${elapsed}s)" passed
groups "pci, shared GSI" intx-shared-gsi

echo "# devices.sh: $(echo "$t_start $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')s in all"
finish
