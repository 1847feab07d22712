#!/usr/bin/env bash
# multiboot.sh: what a multiboot kernel receives from zhv: modules with
# their command lines (--module, --initrd) and a memory map that matches
# --memory.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/modules.elf"
if ! kvm_or_skip "multiboot information"; then
	finish
fi

printf 'first module data' >"$T/m1"
printf 'SECOND' >"$T/m2"

run_zhv run --debug-exit --memory 128M "$K/modules.elf"
check "no modules: status 65, 0 modules" eval 'status_is 65 && out_has "modules: 0"'
check "memory map: 127 MiB of RAM below 128M" out_has "memory map: about 127 MiB of RAM"

run_zhv run --debug-exit --memory 128M --module "$T/m1,arg1 arg2" --module "$T/m2" "$K/modules.elf"
check "two modules: status 65" eval 'status_is 65 && out_has "modules: 2"'
check "module with arguments: its string and contents" \
	out_has "module 0: '$T/m1 arg1 arg2' 17 bytes"
check "module without arguments: its contents" \
	eval 'out_has "module 1: '"'$T/m2'"' 6 bytes" && out_has "starts '"'SECOND'"'"'

run_zhv run --debug-exit --memory 4G "$K/modules.elf"
check "4G: the map holds RAM below 3 GiB and above 4 GiB" out_has "memory map: about 40"

finish
