/* gdb_guest.c: the guest tests/vmm/gdb.sh debugs with GDB through zhv run
 * --gdb, by its symbols (built with -g: vmm/build.mk). The BSP calls
 * gdb_tick(1), (2), (3) (counter: 0, 1, 3, then 6) and gdb_poke(0x1234),
 * (0x5678) (a watchpoint on `watched` sees both writes), then exits with
 * PASS. With "cpus=2" on the command line an AP first spins in ap_spin,
 * counting ap_ticks, until the BSP is done. With "hold=1" the BSP first
 * waits in bsp_hold until the debugger sets `release`. */
#include "apic.h"
#include "rt.h"

volatile uint32_t counter;
volatile uint32_t watched;
volatile uint32_t ap_ticks;
volatile uint32_t done;
volatile uint32_t release;

__attribute__((noinline, used)) static void gdb_tick(uint32_t n)
{
	counter += n;
}

__attribute__((noinline, used)) static void gdb_poke(uint32_t v)
{
	watched = v;
}

__attribute__((noinline)) static void ap_spin(unsigned apic_id)
{
	(void)apic_id;
	while (!done) {
		rt_atomic_inc(&ap_ticks);
		rt_pause();
	}
}

__attribute__((noinline)) static void bsp_hold(void)
{
	while (!release)
		rt_pause();
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned cpus = rt_cmdline_uint("cpus", 1);
	if (cpus > 1 && !rt_start_ap(1, ap_spin, 20000000))
		rt_fail("the AP did not start");
	if (rt_cmdline_uint("hold", 0)) {
		rt_printf("gdb_guest: holding\n");
		bsp_hold();
	}
	for (uint32_t i = 1; i <= 3; i++)
		gdb_tick(i);
	gdb_poke(0x1234);
	gdb_poke(0x5678);
	done = 1;
	rt_printf("gdb_guest: counter %u watched %x ap_ticks %s\n", counter, watched,
	          ap_ticks ? "some" : "none");
	if (counter != 6 || watched != 0x5678)
		rt_fail("counter %u watched %x", counter, watched);
	rt_pass();
}
