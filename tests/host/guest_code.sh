#!/usr/bin/env bash
# guest_code.sh: the bundled guest and the test kernels contain only
# instructions KVM's CPL0 emulator runs on our machine: no x87, MMX, SSE or
# AVX, popcnt/lzcnt, cmpxchg16b, xsave, movbe, rdtscp, int n, vmcall...
# (shared/spec/kvm-on-this-machine.md, section 2). Needs no KVM: it runs on
# this machine (tests/run-tests.sh), never inside tools/kvm-in-qemu.sh.
. "$(dirname "$0")/../vmm/lib/common.sh"
need_binaries "$GUEST"

bad='^(f[a-z0-9]+|popcnt|lzcnt|tzcnt|cmpxchg16b|xsave[a-z0-9]*|xrstor[a-z0-9]*|xgetbv|movbe|rdtscp|rdpid|crc32[a-z]*|vmcall|vmmcall|sysenter|monitor|mwait|endbr32|int|int3|into|rdpkru|andn|pdep|pext|mulx|adcx|adox|bzhi|sarx|shlx|shrx)$'
for f in "$GUEST" "$KERNELS"/*.elf; do
	[ -e "$f" ] || continue
	# insn.elf runs exactly these instructions on purpose: it tests libzhv's
	# fallback emulator (tests/vmm/insn.sh).
	[ "${f##*/}" = insn.elf ] && continue
	# The mnemonic column of every instruction in executable sections.
	found=$(objdump -d --no-show-raw-insn "$f" | awk -F'\t' 'NF >= 2 {split($2, w, " "); print w[1]}' |
		grep -E "$bad" | sort | uniq -c)
	regs=$(objdump -d "$f" | grep -cE '%(x|y|z)mm|%mm[0-7]|%st' || true)
	name=${f#"$BUILD"/}
	if [ -z "$found" ] && [ "$regs" -eq 0 ]; then
		ok "$name: integer code only"
	else
		not_ok "$name: integer code only" "instructions: $found" "vector/x87 register uses: $regs"
	fi
done
finish
