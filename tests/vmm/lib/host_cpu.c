/* host_cpu.c: names the CPU the tests run on, for scripts that must gate a
 * quirk on it (never on a symptom). Prints one line:
 *   VENDOR HYPERVISOR
 * VENDOR is the CPUID leaf 0 vendor string (AuthenticAMD, GenuineIntel, ...);
 * HYPERVISOR is "qemu-tcg" when leaf 0x40000000 carries QEMU's software CPU
 * signature "TCGTCGTCGTCG" (tools/kvm-in-qemu.sh), the signature itself for
 * any other hypervisor, or "none" when CPUID.1:ECX.HYPERVISOR is clear. */
#include <cpuid.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	unsigned a, b, c, d;
	char vendor[13] = {0}, hv[13] = {0};
	__cpuid(0, a, b, c, d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31))) {
		printf("%s none\n", vendor);
		return 0;
	}
	__cpuid(0x40000000, a, b, c, d);
	memcpy(hv, &b, 4);
	memcpy(hv + 4, &c, 4);
	memcpy(hv + 8, &d, 4);
	for (char *p = hv; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			*p = '_';
	printf("%s %s\n", vendor, !strcmp(hv, "TCGTCGTCGTCG") ? "qemu-tcg" : (hv[0] ? hv : "unknown"));
	return 0;
}
