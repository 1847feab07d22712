#!/usr/bin/env bash
# boot_guest.sh: the bundled default guest (build/guest/guest.elf) boots
# end to end: BSP greeting, every AP through INIT/SIPI, sector 0 of a
# virtio-blk disk, ACPI power-off with exit status 0.
. "$(dirname "$0")/lib/common.sh"
need_binaries "$ZHV" "$GUEST"

if ! kvm_or_skip "bundled guest boots"; then
	finish
fi

disk=$T/disk.img
printf 'ZHV-DISK-SECTOR0 and the rest of sector zero' >"$disk"
truncate -s 1M "$disk"

# booted CPUS: the common lines of a clean boot with CPUS vCPUs.
booted() {
	status_is 0 && out_has "zhv guest: BSP up, $1 CPUs" && out_has "zhv guest: powering off" &&
		out_lacks "failed" && out_lacks "did not start"
}
all_aps_up() {
	local i
	for ((i = 1; i < $1; i++)); do
		grep -qx "cpu $i up" "$T/out" || return 1
	done
	out_has "zhv guest: $(($1 - 1)) of $(($1 - 1)) APs up"
}

run_zhv run --cpus 1 "$GUEST"
check "1 CPU, no disk: boots and powers off (status 0, ${elapsed}s)" booted 1
check "1 CPU, no disk: says no disk" out_has "no disk"
check "1 CPU: starts no AP" out_lacks "cpu 1 up"

run_zhv run --cpus 4 --disk "$disk" "$GUEST"
check "4 CPUs + disk: boots and powers off (status 0, ${elapsed}s)" booted 4
check "4 CPUs: cpu 1, 2 and 3 up" all_aps_up 4
check "4 CPUs + disk: reads sector 0" grep -qx "disk: ZHV-DISK-SECTOR0" "$T/out"
echo "# 4 CPUs + disk took ${elapsed}s"

run_zhv run --cpus 2 --memory 64M --disk "$disk,ro" "$GUEST"
check "2 CPUs, 64M, read-only disk: boots (status 0, ${elapsed}s)" booted 2
check "2 CPUs: cpu 1 up" all_aps_up 2
check "read-only disk: reads sector 0" grep -qx "disk: ZHV-DISK-SECTOR0" "$T/out"

run_zhv run --cpus 16 "$GUEST"
check "16 CPUs: all APs up (${elapsed}s)" all_aps_up 16

run_zhv run --memory 5G --cmdline "hello guest" "$GUEST"
check "5G (RAM above 4 GiB): boots" booted 1
check "--cmdline reaches the guest" out_has "hello guest"

run_zhv run --serial "file:$T/serial.txt" "$GUEST"
check "--serial file: status 0, nothing on stdout" eval 'status_is 0 && out_empty'
check "--serial file: the guest's lines are in the file" grep -qF "zhv guest: BSP up, 1 CPUs" "$T/serial.txt"

run_zhv run --serial none "$GUEST"
check "--serial none: status 0, nothing on stdout" eval 'status_is 0 && out_empty'

finish
