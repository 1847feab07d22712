/* hello_guest.c: the smallest complete libzhv program. It maps 2 MiB of RAM,
 * builds identity page tables, runs 31 bytes of 64-bit guest code that
 * prints a string through an IO trap on port 0x3f8, and stops at a MEM
 * trap. Built with the project (make) and shown in the README. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "zhv.h"

#define RAM_SIZE (2u << 20)
#define CODE_GPA 0x10000u
#define DONE_GPA 0x200000u /* a MEM trap just above RAM */

static const uint8_t guest_code[] = {
	0x66, 0xba, 0xf8, 0x03,                   /* mov $0x3f8, %dx */
	0x48, 0x8d, 0x35, 0x14, 0x00, 0x00, 0x00, /* lea msg(%rip), %rsi */
	0xac,                                     /* 1: lodsb */
	0x84, 0xc0,                               /* test %al, %al */
	0x74, 0x03,                               /* jz 2f */
	0xee,                                     /* out %al, %dx */
	0xeb, 0xf8,                               /* jmp 1b */
	0x48, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x20, /* 2: movq $0, DONE_GPA */
	0x00, 0x00, 0x00, 0x00, 0x00,
	'H', 'e', 'l', 'l', 'o', ' ', 'f', 'r', 'o', 'm', ' ', 't', 'h', 'e', ' ',
	'g', 'u', 'e', 's', 't', '\n', 0,
};

int main(void)
{
	zhv_guest_t *guest;
	zhv_vcpu_t *vcpu;
	zhv_status_t st = zhv_guest_create(NULL, &guest);
	if (st != ZHV_OK) {
		fprintf(stderr, "zhv_guest_create: %s\n", zhv_status_string(st));
		return 1;
	}
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return 1;
	/* The BSP starts in 64-bit mode with CR3 = 0: PML4 at 0, PDPT at
	 * 0x1000, a page directory at 0x2000 with two 2 MiB pages. */
	uint64_t *pml4 = (uint64_t *)ram, *pdpt = (uint64_t *)(ram + 0x1000),
	         *pd = (uint64_t *)(ram + 0x2000);
	pml4[0] = 0x1000 | 0x3;
	pdpt[0] = 0x2000 | 0x3;
	pd[0] = 0x000000 | 0x83;
	pd[1] = 0x200000 | 0x83;
	memcpy(ram + CODE_GPA, guest_code, sizeof(guest_code));

	if ((st = zhv_guest_map(guest, 0, ram, RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(guest, ZHV_TRAP_IO, 0x3f8, 1, NULL, 1)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(guest, ZHV_TRAP_MEM, DONE_GPA, 0x1000, NULL, 2)) != ZHV_OK ||
	    (st = zhv_vcpu_create(guest, 0, CODE_GPA, &vcpu)) != ZHV_OK) {
		fprintf(stderr, "setup: %s\n", zhv_status_string(st));
		return 1;
	}
	for (;;) {
		zhv_packet_t pkt;
		st = zhv_vcpu_enter(vcpu, &pkt);
		if (st != ZHV_OK) {
			fprintf(stderr, "zhv_vcpu_enter: %s\n", zhv_status_string(st));
			return 1;
		}
		if (pkt.type == ZHV_PKT_TYPE_GUEST_IO && !pkt.guest_io.input)
			putchar(pkt.guest_io.u8);
		else if (pkt.type == ZHV_PKT_TYPE_GUEST_MEM && pkt.key == 2)
			break;
	}
	zhv_vcpu_destroy(vcpu);
	zhv_guest_destroy(guest);
	munmap(ram, RAM_SIZE);
	return 0;
}
