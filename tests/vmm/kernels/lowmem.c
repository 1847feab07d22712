/* lowmem.c: a multiboot kernel linked at 0x8000 (TK_BASE_lowmem in
 * vmm/build.mk), where zhv's boot stack and information went by default:
 * checks that the multiboot information lies outside page 0 and outside
 * the image, copies a trampoline into page 0, runs it in real mode (it
 * writes "real mode: ok" to COM1 with `out` from 16-bit code and stores a
 * value through a real-mode segment) and comes back to protected mode. */
#include "rt.h"

/* Where the trampoline runs: page 0, above the IVT and the BDA. */
#define TRAMP 0x600u

/* Entered by `call` in 32-bit protected mode (CS 0x08, flat data 0x10);
 * loads its own GDT (adding 16-bit segments 0x18/0x20), drops to 16-bit
 * protected mode, clears CR0.PE, runs at 0000:TRAMP+x in real mode,
 * sets CR0.PE again and returns through the 32-bit code segment with the
 * caller's GDT and stack. Everything is addressed as TRAMP + (label -
 * rm_tramp): the code only runs at TRAMP. */
__asm__(
	".section .rodata\n"
	".globl rm_tramp, rm_tramp_end, rm_flag_off\n"
	".set rm_flag_off, rm_flag - rm_tramp\n"
	".code32\n"
	"rm_tramp:\n"
	"	mov %esp, 0x600 + (rm_esp - rm_tramp)\n"
	"	sgdtl 0x600 + (rm_old_gdt - rm_tramp)\n"
	"	lgdtl 0x600 + (rm_gdt_desc - rm_tramp)\n"
	"	ljmp $0x18, $0x600 + (rm_pm16 - rm_tramp)\n"
	".code16\n"
	"rm_pm16:\n"
	"	mov $0x20, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	mov %ax, %ss\n"
	"	mov %cr0, %eax\n"
	"	and $0xfffffffe, %eax\n"
	"	mov %eax, %cr0\n"
	"	ljmp $0, $0x600 + (rm_real - rm_tramp)\n"
	"rm_real:\n"
	"	xor %ax, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %ss\n"
	"	mov $0x3f8, %dx\n"
	"	mov $0x600 + (rm_msg - rm_tramp), %si\n"
	"1:	lodsb\n"
	"	test %al, %al\n"
	"	jz 2f\n"
	"	outb %al, %dx\n"
	"	jmp 1b\n"
	/* es = 0x60: es:(rm_flag - rm_tramp) is TRAMP + that offset. */
	"2:	mov $0x60, %ax\n"
	"	mov %ax, %es\n"
	"	movw $0x1234, %es:(rm_flag - rm_tramp)\n"
	"	mov %cr0, %eax\n"
	"	or $1, %eax\n"
	"	mov %eax, %cr0\n"
	"	ljmpl $0x08, $0x600 + (rm_pm32 - rm_tramp)\n"
	".code32\n"
	"rm_pm32:\n"
	"	mov $0x10, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	mov %ax, %ss\n"
	"	lgdtl 0x600 + (rm_old_gdt - rm_tramp)\n"
	"	mov 0x600 + (rm_esp - rm_tramp), %esp\n"
	"	ret\n"
	".balign 8\n"
	"rm_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00CF9A000000FFFF\n" /* 0x08: 32-bit code */
	"	.quad 0x00CF92000000FFFF\n" /* 0x10: 32-bit data */
	"	.quad 0x00009A000000FFFF\n" /* 0x18: 16-bit code, 64 KiB */
	"	.quad 0x000092000000FFFF\n" /* 0x20: 16-bit data, 64 KiB */
	"rm_gdt_end:\n"
	".balign 4\n"
	"	.word 0\n"
	"rm_gdt_desc:\n"
	"	.word rm_gdt_end - rm_gdt - 1\n"
	"	.long 0x600 + (rm_gdt - rm_tramp)\n"
	"	.word 0\n"
	"rm_old_gdt:\n"
	"	.word 0\n"
	"	.long 0\n"
	"rm_esp:\n"
	"	.long 0\n"
	"rm_flag:\n"
	"	.word 0\n"
	"rm_msg:\n"
	"	.asciz \"real mode: ok\\n\"\n"
	"rm_tramp_end:\n"
	".text\n");

extern const uint8_t rm_tramp[], rm_tramp_end[], rm_flag_off[];
extern const uint8_t rt_image_start[], rt_image_end[];

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return a < b + blen && b < a + alen;
}

/* An address the compiler cannot see as a constant (it would warn about
 * accesses to the first page). */
static void *low_ptr(uint32_t addr)
{
	__asm__("" : "+r"(addr));
	return (void *)(uintptr_t)addr;
}

int test_main(const struct rt_mbi *mbi)
{
	uint32_t start = (uint32_t)(uintptr_t)rt_image_start;
	uint32_t end = (uint32_t)(uintptr_t)rt_image_end;
	rt_printf("image: %x-%x, multiboot information at %x\n", start, end,
	          (uint32_t)(uintptr_t)mbi);
	RT_CHECK(start == 0x8000);
	RT_CHECK(mbi != 0);
	uint32_t at = (uint32_t)(uintptr_t)mbi;
	RT_CHECK(at >= 0x1000);
	RT_CHECK(!overlaps(at, sizeof(*mbi), start, end - start));
	RT_CHECK(mbi->mem_lower == 639);
	RT_CHECK(mbi->flags & RT_MB_CMDLINE);
	RT_CHECK(mbi->cmdline >= 0x1000);
	const char *cl = rt_cmdline();
	RT_CHECK(!overlaps(mbi->cmdline, strlen(cl) + 1, start, end - start));
	RT_CHECK(mbi->flags & RT_MB_MMAP);
	RT_CHECK(mbi->mmap_addr >= 0x1000);
	RT_CHECK(!overlaps(mbi->mmap_addr, mbi->mmap_length, start, end - start));
	rt_printf("cmdline: %s\n", cl);

	uint32_t len = (uint32_t)(rm_tramp_end - rm_tramp);
	uint32_t flag_off = (uint32_t)(uintptr_t)rm_flag_off;
	RT_CHECK(TRAMP + len <= 0x1000);
	memcpy(low_ptr(TRAMP), rm_tramp, len);
	volatile uint16_t *flag = low_ptr(TRAMP + flag_off);
	RT_CHECK(*flag == 0);
	rt_puts("entering real mode");
	__asm__ volatile("call *%0"
	                 :
	                 : "r"(low_ptr(TRAMP))
	                 : "eax", "ecx", "edx", "esi", "edi", "memory", "cc");
	rt_printf("back in protected mode, flag %x\n", *flag);
	RT_CHECK(*flag == 0x1234);
	rt_pass();
}
