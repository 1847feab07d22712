/* dev_irq_lines.c: interrupt-line behaviour a PC guest relies on (both
 * were zhv bugs once). Each group prints "group NAME: ok" or "group NAME:
 * FAILED (why)", and the run passes only if all pass. Command line:
 * level=0 or intx=0 leaves that group out (both run by default);
 * devices.sh runs each group on its own.
 *
 * level-eoi-lapic: a level-triggered I/O APIC input still asserted when
 *   the guest EOIs its local APIC is delivered again (82093AA: the local
 *   APIC's EOI broadcast clears Remote IRR, then the level is sampled).
 *   zhv used to send IOAPIC interrupts with KVM_SIGNAL_MSI and never learn
 *   of local-APIC EOIs; now the IOAPIC gives KVM its routes
 *   (zhv_guest_set_irq_route) and gets ZHV_PKT_TYPE_GUEST_EOI packets.
 *   Source: COM2's THRE (pin 3). The handler leaves the line asserted the
 *   first time and lowers it the second (a handler that never lowers it
 *   would be an interrupt storm, as on a PC).
 * intx-shared-gsi: two PCI functions whose INTA# share one input (zhv
 *   wires slot s to GSI 16 + (s & 7): slots 1 and 9 share GSI 17; the
 *   script gives 8 disks so that virtio-rng lands in slot 9). INTx is
 *   wired-OR: while either asserts, the input is asserted. The handler
 *   serves one function per interrupt, as the first driver of a chain
 *   would: blk first (reading its ISR lowers its INTA#), then, because rng
 *   still asserts the line, the EOI brings the interrupt again and the
 *   handler serves rng. If the first function's deassertion wiped out the
 *   second's, the second interrupt would never come. */
#include "apic.h"
#include "group.h"
#include "virtio.h"

#define VEC_LEVEL 0x65
#define VEC_SHARED 0x66
#define COM2 0x2F8

static volatile uint32_t irqs, level_irqs;
static unsigned failures;

static void group_result(const char *name, bool ok, const char *why)
{
	if (ok) {
		RT_GROUP_OK(name);
	} else {
		rt_printf("group %s: FAILED (%s)\n", name, why);
		failures++;
	}
}

/* ---- level-eoi-lapic ---- */

static void on_level(struct rt_frame *f)
{
	(void)f;
	/* The first time, leave the line asserted; after that, lower it. */
	if (++level_irqs >= 2)
		outb(COM2 + 1, 0);
	rt_lapic_eoi();
}

static void level_eoi_lapic(void)
{
	rt_set_handler(VEC_LEVEL, on_level);
	outb(COM2 + 1, 0);
	rt_ioapic_route(3, VEC_LEVEL, 0, RT_RTE_LEVEL);
	rt_sti();
	outb(COM2 + 1, 0x02); /* THRI: the line goes high and stays high */
	rt_wait_count(&level_irqs, 2, 200000);
	outb(COM2 + 1, 0);
	uint32_t rirr = rt_ioapic_read(RT_IOAPIC_REG_RTE(3)) & RT_RTE_REMOTE_IRR;
	rt_printf("level-eoi-lapic: %u interrupt(s), Remote IRR %s after the EOIs\n", level_irqs,
	          rirr ? "set" : "clear");
	rt_ioapic_route(3, VEC_LEVEL, 0, RT_RTE_MASKED);
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_EOIR, VEC_LEVEL);
	group_result("level-eoi-lapic", level_irqs >= 2 && !rirr,
	             "no re-delivery at the local APIC EOI; Remote IRR stuck");
}

/* ---- intx-shared-gsi ---- */

static uint8_t qa_mem[RT_VIRTQ_MEM_SIZE(8)] __attribute__((aligned(4096)));
static uint8_t qb_mem[RT_VIRTQ_MEM_SIZE(8)] __attribute__((aligned(4096)));
static struct rt_virtio_dev da, db;
static struct rt_virtq qa, qb;
static struct {
	uint32_t type, reserved, sector_lo, sector_hi;
} hdr;
static uint8_t sector[512], rnd[16];
static volatile uint8_t st;

static volatile uint8_t isr_a, isr_b;

static void on_shared(struct rt_frame *f)
{
	(void)f;
	uint32_t n = irqs++;
	if (n == 0)
		isr_a = rt_virtio_isr(&da); /* blk's INTA# goes low */
	else if (n == 1)
		isr_b = rt_virtio_isr(&db); /* rng's too: the line is low */
	rt_lapic_eoi();
}

static bool setup(struct rt_virtio_dev *d, struct rt_virtq *q, uint8_t *mem)
{
	if (rt_virtio_init(d, 0) < 0 || rt_virtq_setup(d, q, 0, 8, mem) < 0)
		return false;
	rt_virtio_driver_ok(d);
	return true;
}

static void intx_shared(void)
{
	if (!rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &da) || !rt_virtio_find(RT_VIRTIO_ID_RNG, 0, &db) ||
	    da.irq_line != db.irq_line) {
		group_result("intx-shared-gsi", false, "no blk and rng on one GSI: give 8 disks");
		return;
	}
	rt_printf("intx-shared-gsi: blk 00:%x.0 and rng 00:%x.0 on GSI %u\n", da.slot, db.slot,
	          da.irq_line);
	if (!setup(&da, &qa, qa_mem) || !setup(&db, &qb, qb_mem)) {
		group_result("intx-shared-gsi", false, "device setup failed");
		return;
	}
	rt_set_handler(VEC_SHARED, on_shared);
	rt_ioapic_route(da.irq_line, VEC_SHARED, 0, RT_RTE_LEVEL | RT_RTE_ACTIVE_LOW);
	/* Both functions complete a request while interrupts are off. */
	rt_cli();
	struct rt_vbuf out = {&hdr, 16}, in[2] = {{sector, 512}, {(void *)&st, 1}};
	rt_virtq_add(&qa, &out, 1, in, 2);
	rt_virtq_kick(&qa);
	struct rt_vbuf rin = {rnd, sizeof(rnd)};
	rt_virtq_add(&qb, NULL, 0, &rin, 1);
	rt_virtq_kick(&qb);
	bool done = rt_virtq_wait(&qa, NULL, NULL, 1000000) && rt_virtq_wait(&qb, NULL, NULL, 1000000);
	rt_sti();
	bool both = rt_wait_count(&irqs, 2, 1000000);
	rt_delay_us(50000); /* nothing more may come: the line is low */
	uint32_t rirr = rt_ioapic_read(RT_IOAPIC_REG_RTE(da.irq_line)) & RT_RTE_REMOTE_IRR;
	rt_printf("intx-shared-gsi: requests %s, %u interrupt(s), ISR blk %x rng %x, Remote IRR %s\n",
	          done ? "done" : "lost", irqs, isr_a, isr_b, rirr ? "set" : "clear");
	rt_ioapic_mask(da.irq_line, true);
	group_result("intx-shared-gsi",
	             done && both && irqs == 2 && (isr_a & 1) && (isr_b & 1) && !rirr,
	             "the second function's interrupt was lost");
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_lapic_enable();
	if (rt_cmdline_uint("level", 1))
		level_eoi_lapic();
	if (rt_cmdline_uint("intx", 1))
		intx_shared();
	if (failures)
		rt_fail("%u known bug(s) still there", failures);
	rt_pass();
}
