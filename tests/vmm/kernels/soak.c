/* soak.c: the guest of the board soak test (tests/soak/soak_board.c):
 * starts the devices that run threads of their own (the PIT's timer with
 * channel 0 in mode 2, the RTC's interrupt thread with the periodic
 * interrupt enabled), says so on COM1 and resets the machine through the
 * i8042 (0xfe to port 0x64: the run ends as a power-off, status 0). The
 * interrupts stay masked at the IOAPIC: only the device threads matter. */
#include "rt.h"

#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define RTC_REG_B 0x0B
#define RTC_B_PIE 0x40

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	outb(PIT_CMD, 0x34); /* channel 0, LSB then MSB, mode 2 (rate generator) */
	outb(PIT_CH0, 0x00);
	outb(PIT_CH0, 0x10); /* 0x1000: about 291 Hz */
	outb(RTC_INDEX, RTC_REG_B);
	uint8_t b = inb(RTC_DATA);
	outb(RTC_INDEX, RTC_REG_B);
	outb(RTC_DATA, (uint8_t)(b | RTC_B_PIE));
	rt_puts("soak: up");
	outb(0x64, 0xFE);
	for (int i = 0; i < 1000; i++)
		rt_pause();
	rt_fail("still running after the i8042 reset");
}
