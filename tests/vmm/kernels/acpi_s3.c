/* acpi_s3.c: ACPI S3 (suspend to RAM) as a guest OS does it. Finds the
 * FADT, FACS and the DSDT's \_S3 through the RSDP, arms the RTC alarm a
 * second or two ahead (AIE) with RTC_EN in PM1_EN, writes a waking vector
 * into the FACS, enters S3 (SLP_TYP of \_S3 | SLP_EN), and on the way back
 * checks: WAK_STS and RTC_STS set in PM1_STS (and write-1-to-clear), RAM
 * kept, the CPU resumed at the vector as the ACPI spec says (real mode at
 * CS:IP = vector >> 4 : vector & 0xF; with "x=1" the X_Firmware_Waking_
 * Vector in 32-bit flat protected mode, paging off), interrupts off, the
 * local APIC and the IOAPIC reset, the RTC's alarm flag set. With cpus=2
 * an AP spins before the sleep; after the wake it must have stopped and
 * wait for INIT/SIPI, which starts it again. With "arm=0" nothing can wake
 * the machine: the kernel says "s3: sleeping" and the script ends zhv with
 * SIGTERM. With "novec=1" the FACS holds no waking vector: the wake
 * resets the machine (zhv ends the run with status 0) and nothing here
 * runs again. Command line: [cpus=N] [x=1] [arm=0] [novec=1]. */
#include "apic.h"
#include "rt.h"

#define HDR 36u
#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define PM1_WAK 0x8000u
#define PM1_RTC 0x0400u
#define SLP_EN 0x2000u
#define FIX_RTC (1u << 6)
#define STUB_ADDR 0x8008u /* the waking vector: CS 0x800, IP 8 */
#define MAILBOX 0x7E00u   /* what the wake stub saw, at a fixed address */
#define VEC_RTC 0x38
#define PATTERN_WORDS 4096

/* ---- the way back in --------------------------------------------------------
 * Real mode: record FLAGS, CS, the MSW and the IP of a label in the mailbox,
 * then load a GDT and enter 32-bit protected mode like rt's AP trampoline.
 * 32-bit (X vector): record EFLAGS, CS and CR0, load the GDT (the firmware's
 * GDTR is not ours). Both end in s3_resumed() on a stack of their own. */
__asm__(
	".globl s3_wake16, s3_wake16_end, s3_wake32, s3_ip_label\n"
	/* The 16-bit stub is data (test_main copies it to STUB_ADDR): not
	 * in .text, which tests/vmm/guest_code.sh reads as 32-bit code. */
	".section .rodata\n"
	".code16\n"
	"s3_wake16:\n"
	"	xor %ax, %ax\n"
	"	mov %ax, %ss\n"
	"	mov $0x7C00, %sp\n"
	"	pushf\n"
	"	pop %bx\n"
	"	mov %cs, %cx\n"
	"	smsw %dx\n"
	"	call 1f\n"
	"1:	pop %si\n"
	"	mov %ax, %ds\n"
	"	mov %bx, 0x7E00\n"
	"	mov %cx, 0x7E04\n"
	"	mov %dx, 0x7E08\n"
	"	mov %si, 0x7E0C\n"
	"	movw $1, 0x7E10\n"
	"	cli\n"
	"	cld\n"
	"	lgdtl %cs:(s3_gdt_desc16 - s3_wake16 + 8)\n"
	"	mov %cr0, %eax\n"
	"	or $1, %eax\n"
	"	mov %eax, %cr0\n"
	"	ljmpl $0x08, $s3_entry32\n"
	"	.balign 4\n"
	"s3_gdt_desc16:\n"
	"	.word s3_gdt_end - s3_gdt - 1\n"
	"	.long s3_gdt\n"
	"s3_wake16_end:\n"
	"	.set s3_ip_label, 1b - s3_wake16 + 8\n"
	".text\n"
	".code32\n"
	"s3_wake32:\n"
	"	mov $s3_stack + 8192, %esp\n"
	"	pushf\n"
	"	pop %ebx\n"
	"	mov %cs, %ecx\n"
	"	mov %cr0, %edx\n"
	"	mov %ebx, 0x7E00\n"
	"	mov %ecx, 0x7E04\n"
	"	mov %edx, 0x7E08\n"
	"	movl $s3_wake32, 0x7E0C\n"
	"	movl $2, 0x7E10\n"
	"	lgdt s3_gdt_desc\n"
	"	ljmp $0x08, $s3_entry32\n"
	"s3_entry32:\n"
	"	mov $0x10, %cx\n"
	"	mov %cx, %ds\n"
	"	mov %cx, %es\n"
	"	mov %cx, %fs\n"
	"	mov %cx, %gs\n"
	"	mov %cx, %ss\n"
	"	mov $s3_stack + 8192, %esp\n"
	"	call s3_resumed\n"
	"2:	cli\n"
	"	hlt\n"
	"	jmp 2b\n"
	".data\n"
	".balign 16\n"
	"s3_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00CF9A000000FFFF\n"
	"	.quad 0x00CF92000000FFFF\n"
	"s3_gdt_end:\n"
	"	.balign 4\n"
	"	.word 0\n"
	"s3_gdt_desc:\n"
	"	.word s3_gdt_end - s3_gdt - 1\n"
	"	.long s3_gdt\n"
	".text\n");

extern const uint8_t s3_wake16[], s3_wake16_end[], s3_wake32[], s3_ip_label[];
void s3_resumed(void);
uint8_t s3_stack[8192] __attribute__((aligned(16)));

struct mailbox {
	uint32_t flags, cs, cr0, ip, mode;
};
#define MB ((volatile struct mailbox *)(uintptr_t)MAILBOX)

static uint32_t pattern[PATTERN_WORDS];
static uint16_t pm1a_evt, pm1a_cnt;
static unsigned cpus;
static bool use_x;
static volatile uint32_t ap_counter, ap_again;

/* ---- tables ------------------------------------------------------------------ */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* SLP_TYPa of \_S3: "_S3_" PackageOp PkgLength NumElements, first element. */
static int s3_slp_typ(const uint8_t *dsdt)
{
	uint32_t len = rd32(dsdt + 4);
	for (uint32_t i = HDR; i + 8 < len; i++) {
		if (memcmp(dsdt + i, "_S3_", 4) || dsdt[i - 1] != 0x08 /* NameOp */)
			continue;
		const uint8_t *p = dsdt + i + 4;
		if (*p++ != 0x12)
			return -1;
		p += 1 + (*p >> 6);
		if (*p++ < 1)
			return -1;
		if (*p == 0x0A)
			return p[1];
		return *p <= 1 ? *p : -1;
	}
	return -1;
}

/* ---- RTC ---------------------------------------------------------------------- */

static uint8_t cmos_rd(uint8_t reg)
{
	outb(RTC_INDEX, reg);
	return inb(RTC_DATA);
}

static void cmos_wr(uint8_t reg, uint8_t v)
{
	outb(RTC_INDEX, reg);
	outb(RTC_DATA, v);
}

/* Alarm at the second two seconds from now, any minute, any hour: it
 * fires one to two seconds ahead. */
static unsigned arm_alarm(void)
{
	while (cmos_rd(0x0A) & 0x80) /* update in progress */
		rt_pause();
	uint8_t b = cmos_rd(0x0B);
	bool bin = b & 0x04;
	uint8_t s = cmos_rd(0x00);
	unsigned sec = bin ? s : (unsigned)(s >> 4) * 10 + (s & 0x0F);
	unsigned at = (sec + 2) % 60;
	cmos_wr(0x01, bin ? (uint8_t)at : (uint8_t)((at / 10) << 4 | at % 10));
	cmos_wr(0x03, 0xC0);
	cmos_wr(0x05, 0xC0);
	cmos_rd(0x0C); /* nothing pending */
	cmos_wr(0x0B, (uint8_t)(b | 0x20)); /* AIE */
	return at;
}

/* ---- the AP ------------------------------------------------------------------- */

static void ap_spin(unsigned apic_id)
{
	(void)apic_id;
	rt_cli();
	for (;;)
		ap_counter++;
}

static void ap_restarted(unsigned apic_id)
{
	if (apic_id == 1)
		ap_again = 1;
}

/* ---- after the wake ------------------------------------------------------------ */

void s3_resumed(void)
{
	rt_load_idt(); /* the firmware left the real-mode IDT */
	volatile struct mailbox *mb = MB;
	rt_printf("s3: resumed (mode %u, cs %x, ip %x, flags %x, cr0 %x)\n", mb->mode, mb->cs,
	          mb->ip, mb->flags, mb->cr0);
	if (use_x) {
		RT_CHECK(mb->mode == 2);
		RT_CHECK(mb->ip == (uint32_t)(uintptr_t)s3_wake32);
		RT_CHECK((mb->cr0 & 1) == 1);           /* protected mode */
		RT_CHECK((mb->cr0 & 0x80000000u) == 0); /* paging off */
	} else {
		RT_CHECK(mb->mode == 1);
		RT_CHECK((mb->cs & 0xFFFF) == (STUB_ADDR >> 4));
		RT_CHECK((mb->ip & 0xFFFF) == (uint32_t)(uintptr_t)s3_ip_label);
		RT_CHECK((mb->cr0 & 1) == 0); /* real mode */
	}
	RT_CHECK((mb->flags & 0x200) == 0); /* interrupts off */
	rt_puts("group s3-vector: ok");

	uint16_t sts = inw(pm1a_evt);
	rt_printf("s3: PM1_STS %x\n", sts);
	RT_CHECK(sts & PM1_WAK);
	RT_CHECK(sts & PM1_RTC);
	outw(pm1a_evt, PM1_WAK); /* write 1 to clear, one bit at a time */
	RT_CHECK(inw(pm1a_evt) == (sts & ~PM1_WAK));
	outw(pm1a_evt, PM1_RTC);
	RT_CHECK((inw(pm1a_evt) & (PM1_WAK | PM1_RTC)) == 0);
	RT_CHECK((cmos_rd(0x0C) & 0x20) == 0x20); /* the RTC's alarm flag */
	rt_puts("group s3-pm1: ok");

	for (unsigned i = 0; i < PATTERN_WORDS; i++)
		if (pattern[i] != (i * 0x9E3779B9u ^ 0x5A5A0000u))
			rt_fail("RAM lost: word %u is %x", i, pattern[i]);
	rt_puts("group s3-ram: ok");

	/* The chipset's interrupt controllers are reset: the local APIC is
	 * software-disabled (SVR 0xFF), the IOAPIC entry masked again. */
	RT_CHECK(rt_lapic_read(RT_LAPIC_SVR) == 0xFF);
	RT_CHECK(rt_ioapic_read(RT_IOAPIC_REG_RTE(8)) & RT_RTE_MASKED);
	rt_lapic_enable();
	rt_puts("group s3-irqchips: ok");

	if (cpus > 1) {
		uint32_t c0 = ap_counter;
		rt_delay_us(200000);
		if (ap_counter != c0)
			rt_fail("the AP still runs after the wake (%u -> %u)", c0, ap_counter);
		rt_ap_mask[0] &= ~2u;
		if (!rt_start_ap(1, ap_restarted, 5000000) || !ap_again)
			rt_fail("INIT/SIPI did not start the AP after the wake");
		rt_puts("group s3-ap: ok");
	}
	rt_pass();
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	cpus = rt_cmdline_uint("cpus", 1);
	use_x = rt_cmdline_uint("x", 0) != 0;
	bool arm = rt_cmdline_uint("arm", 1) != 0;
	bool novec = rt_cmdline_uint("novec", 0) != 0;
	rt_cli();

	const uint8_t *fadt = rt_acpi_find_table("FACP");
	RT_CHECK(fadt != NULL);
	uint8_t *facs = (uint8_t *)(uintptr_t)rd32(fadt + 36);
	RT_CHECK(!memcmp(facs, "FACS", 4));
	const uint8_t *dsdt = (const uint8_t *)(uintptr_t)rd32(fadt + 40);
	int typ = s3_slp_typ(dsdt);
	if (typ < 0)
		rt_fail("the DSDT has no \\_S3");
	if (rd32(fadt + 112) & FIX_RTC)
		rt_fail("FADT FIX_RTC set: no RTC_STS/RTC_EN");
	pm1a_evt = (uint16_t)rd32(fadt + 56);
	pm1a_cnt = (uint16_t)rd32(fadt + 64);

	for (unsigned i = 0; i < PATTERN_WORDS; i++)
		pattern[i] = i * 0x9E3779B9u ^ 0x5A5A0000u;
	memset((void *)(uintptr_t)MAILBOX, 0, sizeof(struct mailbox));
	memcpy((void *)(uintptr_t)STUB_ADDR, s3_wake16, (size_t)(s3_wake16_end - s3_wake16));
	if (use_x) {
		wr32(facs + 12, STUB_ADDR); /* X wins when set */
		wr32(facs + 24, (uint32_t)(uintptr_t)s3_wake32);
		wr32(facs + 28, 0);
	} else {
		wr32(facs + 12, novec ? 0 : STUB_ADDR);
		wr32(facs + 24, 0);
		wr32(facs + 28, 0);
	}

	if (cpus > 1) {
		if (!rt_start_ap(1, ap_spin, 5000000))
			rt_fail("the AP did not start");
		/* The AP runs (it may wait for a host CPU a while). */
		uint32_t c0 = ap_counter, t0 = rt_pmtimer();
		while (ap_counter == c0 && rt_us_since(t0) < 5000000)
			rt_pause();
		if (ap_counter == c0)
			rt_fail("the AP does not run before the sleep");
	}
	/* An IOAPIC entry the wake must mask again. */
	rt_ioapic_route(8, VEC_RTC, 0, 0);
	RT_CHECK(!(rt_ioapic_read(RT_IOAPIC_REG_RTE(8)) & RT_RTE_MASKED));

	outw(pm1a_evt, 0xFFFF); /* clear every status bit */
	if (arm) {
		outw((uint16_t)(pm1a_evt + 2), PM1_RTC); /* RTC_EN */
		unsigned at = arm_alarm();
		rt_printf("s3: entering S3 (SLP_TYP %d), RTC alarm at second %u\n", typ, at);
	} else {
		outw((uint16_t)(pm1a_evt + 2), 0);
		rt_printf("s3: sleeping (SLP_TYP %d), no wake armed\n", typ);
	}
	outw(pm1a_cnt, (uint16_t)((unsigned)typ << 10 | SLP_EN));
	rt_fail("still running after SLP_TYP=S3|SLP_EN");
}
