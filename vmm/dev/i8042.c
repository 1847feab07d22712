/* i8042.c: PS/2 controller at 0x60/0x64 with a keyboard that acknowledges commands, no AUX port, and CPU reset (0xfe) as power-off. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* clang-format off */
#define I8042_DATA_PORT 0x60u
#define I8042_CMD_PORT  0x64u

/* Status register (IBM PS/2 Technical Reference, "Keyboard/Auxiliary
 * Device Controller", status byte; Linux i8042.h I8042_STR_*). */
#define I8042_STR_OBF     0x01 /* output buffer full */
#define I8042_STR_SYS     0x04 /* system flag (mirrors CTR bit 2) */
#define I8042_STR_CMD     0x08 /* last write was to the command port */
#define I8042_STR_KEYLOCK 0x10 /* 1: keyboard not inhibited */
#define I8042_STR_AUXDATA 0x20 /* output buffer holds AUX data */

/* Controller command byte ("CTR"). */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYS    0x04
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE  0x40
#define I8042_CTR_RESET  (I8042_CTR_XLATE | I8042_CTR_AUXDIS | I8042_CTR_SYS | I8042_CTR_KBDINT)

/* Controller commands (written to 0x64). */
#define I8042_CMD_READ_CTR   0x20 /* 0x21-0x3f: read controller RAM */
#define I8042_CMD_WRITE_CTR  0x60 /* 0x61-0x7f: write controller RAM */
#define I8042_CMD_AUX_DIS    0xA7
#define I8042_CMD_AUX_EN     0xA8
#define I8042_CMD_AUX_TEST   0xA9
#define I8042_CMD_SELF_TEST  0xAA /* answers 0x55 */
#define I8042_CMD_KBD_TEST   0xAB /* answers 0x00 */
#define I8042_CMD_KBD_DIS    0xAD
#define I8042_CMD_KBD_EN     0xAE
#define I8042_CMD_READ_IN    0xC0
#define I8042_CMD_READ_OUT   0xD0
#define I8042_CMD_WRITE_OUT  0xD1
#define I8042_CMD_WRITE_KBD  0xD2 /* next byte appears as keyboard data */
#define I8042_CMD_WRITE_AUX  0xD3 /* next byte appears as AUX data (loop) */
#define I8042_CMD_TO_AUX     0xD4 /* next byte goes to the AUX device */
#define I8042_CMD_A20_OFF    0xDD
#define I8042_CMD_A20_ON     0xDF
#define I8042_CMD_PULSE      0xF0 /* 0xF0-0xFF: pulse output lines low; bit 0 = CPU reset */

#define I8042_OUTP_RESET 0x01 /* output port bit 0: 0 resets the CPU */
#define I8042_OUTP_A20   0x02

/* Keyboard commands and answers (IBM PS/2 keyboard reference). */
#define KBD_CMD_ECHO   0xEE
#define KBD_CMD_GETID  0xF2
#define KBD_CMD_RESET  0xFF
#define KBD_ACK        0xFA
#define KBD_BAT_OK     0xAA
#define KBD_ID0        0xAB
#define KBD_ID1        0x83 /* 0x41 when the controller translates */
#define KBD_ID1_XLATE  0x41

#define I8042_QUEUE 16
/* clang-format on */

struct i8042 {
	pthread_mutex_t lock;
	struct vm *vm;
	uint8_t ctr;
	uint8_t outp;
	uint8_t pending;  /* controller command waiting for its data byte, 0: none */
	bool last_cmd;    /* status bit 3 */
	uint8_t last_out; /* what a read of an empty buffer returns */
	uint8_t q[I8042_QUEUE];
	bool q_aux[I8042_QUEUE];
	unsigned q_head, q_count;
	int kbd_level, aux_level;
};

static void i8042_queue(struct i8042 *k, uint8_t byte, bool aux)
{
	if (k->q_count == I8042_QUEUE)
		return; /* full: dropped */
	unsigned i = (k->q_head + k->q_count) % I8042_QUEUE;
	k->q[i] = byte;
	k->q_aux[i] = aux;
	k->q_count++;
}

/* IRQ 1 / IRQ 12 follow "a byte waits and its interrupt is enabled" in
 * the CTR; (repulse) lowers them first so each new byte is a new edge. */
static void i8042_update_irq(struct i8042 *k, bool repulse)
{
	bool aux = k->q_count && k->q_aux[k->q_head];
	int kbd_level = k->q_count && !aux && (k->ctr & I8042_CTR_KBDINT);
	int aux_level = aux && (k->ctr & I8042_CTR_AUXINT);
	if (repulse && k->kbd_level) {
		vm_irq_set(k->vm, 1, 0);
		k->kbd_level = 0;
	}
	if (repulse && k->aux_level) {
		vm_irq_set(k->vm, 12, 0);
		k->aux_level = 0;
	}
	if (kbd_level != k->kbd_level) {
		k->kbd_level = kbd_level;
		vm_irq_set(k->vm, 1, kbd_level);
	}
	if (aux_level != k->aux_level) {
		k->aux_level = aux_level;
		vm_irq_set(k->vm, 12, aux_level);
	}
}

static uint8_t i8042_status(const struct i8042 *k)
{
	uint8_t st = I8042_STR_KEYLOCK;
	if (k->q_count) {
		st |= I8042_STR_OBF;
		if (k->q_aux[k->q_head])
			st |= I8042_STR_AUXDATA;
	}
	if (k->ctr & I8042_CTR_SYS)
		st |= I8042_STR_SYS;
	if (k->last_cmd)
		st |= I8042_STR_CMD;
	return st;
}

/* A byte for the keyboard: every byte (commands and their parameters)
 * is acknowledged, so atkbd's probe finishes at once. */
static void i8042_kbd_write(struct i8042 *k, uint8_t v)
{
	switch (v) {
	case KBD_CMD_ECHO:
		i8042_queue(k, KBD_CMD_ECHO, false);
		break;
	case KBD_CMD_GETID:
		i8042_queue(k, KBD_ACK, false);
		i8042_queue(k, KBD_ID0, false);
		i8042_queue(k, (k->ctr & I8042_CTR_XLATE) ? KBD_ID1_XLATE : KBD_ID1, false);
		break;
	case KBD_CMD_RESET:
		i8042_queue(k, KBD_ACK, false);
		i8042_queue(k, KBD_BAT_OK, false);
		break;
	default:
		i8042_queue(k, KBD_ACK, false);
		break;
	}
}

/* Returns true if the write asks for a CPU reset. */
static bool i8042_data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;
	k->pending = 0;
	k->last_cmd = false;
	if (cmd == I8042_CMD_WRITE_CTR) {
		k->ctr = v;
	} else if (cmd > I8042_CMD_WRITE_CTR && cmd <= 0x7F) {
		/* controller RAM: not kept */
	} else if (cmd == I8042_CMD_WRITE_OUT) {
		k->outp = v;
		if (!(v & I8042_OUTP_RESET))
			return true;
	} else if (cmd == I8042_CMD_WRITE_KBD) {
		i8042_queue(k, v, false);
	} else if (cmd == I8042_CMD_WRITE_AUX) {
		i8042_queue(k, v, true);
	} else if (cmd == I8042_CMD_TO_AUX) {
		/* no AUX device: dropped */
	} else {
		i8042_kbd_write(k, v);
	}
	return false;
}

/* Returns true if the command asks for a CPU reset. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->last_cmd = true;
	k->pending = 0;
	if (cmd >= I8042_CMD_READ_CTR && cmd < I8042_CMD_WRITE_CTR) {
		i8042_queue(k, cmd == I8042_CMD_READ_CTR ? k->ctr : 0, false);
		return false;
	}
	if (cmd >= I8042_CMD_WRITE_CTR && cmd <= 0x7F) {
		k->pending = cmd;
		return false;
	}
	if (cmd >= I8042_CMD_PULSE)
		return !(cmd & I8042_OUTP_RESET); /* 0xFE: pulse reset low */
	switch (cmd) {
	case I8042_CMD_AUX_DIS:
		k->ctr |= I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_EN:
		/* There is no AUX port: AUXDIS stays set, which is how Linux's
		 * i8042_check_aux (the "bit assignment test") learns it. */
		break;
	case I8042_CMD_AUX_TEST:
		i8042_queue(k, 0x02, false); /* "clock line stuck high": no AUX */
		break;
	case I8042_CMD_SELF_TEST:
		k->ctr |= I8042_CTR_SYS;
		i8042_queue(k, 0x55, false);
		break;
	case I8042_CMD_KBD_TEST:
		i8042_queue(k, 0x00, false);
		break;
	case I8042_CMD_KBD_DIS:
		k->ctr |= I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_KBD_EN:
		k->ctr &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_READ_IN:
		i8042_queue(k, 0x00, false);
		break;
	case I8042_CMD_READ_OUT:
		i8042_queue(k, k->outp, false);
		break;
	case I8042_CMD_WRITE_OUT:
	case I8042_CMD_WRITE_KBD:
	case I8042_CMD_WRITE_AUX:
	case I8042_CMD_TO_AUX:
		k->pending = cmd;
		break;
	case I8042_CMD_A20_OFF:
		k->outp &= (uint8_t)~I8042_OUTP_A20;
		break;
	case I8042_CMD_A20_ON:
		k->outp |= I8042_OUTP_A20;
		break;
	default: /* unknown commands are ignored */
		break;
	}
	return false;
}

static void i8042_access(struct i8042 *k, bool cmd_port, bool write, uint8_t *data,
                         unsigned size)
{
	bool reset = false;
	pthread_mutex_lock(&k->lock);
	if (!write) {
		/* One byte answers; the rest of a wider read is all-ones. */
		memset(data, 0xFF, size);
		if (cmd_port) {
			data[0] = i8042_status(k);
		} else {
			bool popped = k->q_count != 0;
			if (popped) {
				k->last_out = k->q[k->q_head];
				k->q_head = (k->q_head + 1) % I8042_QUEUE;
				k->q_count--;
			}
			data[0] = k->last_out;
			i8042_update_irq(k, popped);
		}
	} else {
		reset = cmd_port ? i8042_command(k, data[0]) : i8042_data_write(k, data[0]);
		i8042_update_irq(k, false);
	}
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: vm_request_exit kicks every vCPU. */
	if (reset)
		vm_request_exit(k->vm, VM_EXIT_POWEROFF, 0);
}

static void i8042_data_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                              unsigned size)
{
	(void)offset;
	i8042_access(opaque, false, write, data, size);
}

static void i8042_cmd_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                             unsigned size)
{
	(void)offset;
	i8042_access(opaque, true, write, data, size);
}

/* ---- snapshot (snapshot.h): section "i8042", version 1 -------------------
 * ctr outp pending (u8), last_cmd (bool), last_out (u8), q_count (u8) and
 * the q_count queued bytes, oldest first, each as the byte (u8) and
 * whether it is AUX data (bool). The IRQ 1 and 12 levels follow from the
 * queue and CTR (the lines are restored with the IOAPIC's section). */

static bool i8042_pending_valid(uint8_t cmd)
{
	return cmd == 0 || (cmd >= I8042_CMD_WRITE_CTR && cmd <= 0x7F) ||
	       cmd == I8042_CMD_WRITE_OUT || cmd == I8042_CMD_WRITE_KBD ||
	       cmd == I8042_CMD_WRITE_AUX || cmd == I8042_CMD_TO_AUX;
}

static int i8042_snap_save(void *opaque, struct snap_writer *w)
{
	struct i8042 *k = opaque;
	pthread_mutex_lock(&k->lock);
	snap_put_u8(w, k->ctr);
	snap_put_u8(w, k->outp);
	snap_put_u8(w, k->pending);
	snap_put_bool(w, k->last_cmd);
	snap_put_u8(w, k->last_out);
	snap_put_u8(w, (uint8_t)k->q_count);
	for (unsigned i = 0; i < k->q_count; i++) {
		unsigned j = (k->q_head + i) % I8042_QUEUE;
		snap_put_u8(w, k->q[j]);
		snap_put_bool(w, k->q_aux[j]);
	}
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static int i8042_snap_load(void *opaque, struct snap_reader *r)
{
	struct i8042 *k = opaque;
	struct i8042 t;
	memset(&t, 0, sizeof(t));
	t.ctr = snap_get_u8(r);
	t.outp = snap_get_u8(r);
	t.pending = snap_get_u8(r);
	t.last_cmd = snap_get_bool(r);
	t.last_out = snap_get_u8(r);
	t.q_count = snap_get_u8(r);
	if (!i8042_pending_valid(t.pending) || t.q_count > I8042_QUEUE)
		snap_bad(r);
	for (unsigned i = 0; i < t.q_count && !r->err; i++) {
		t.q[i] = snap_get_u8(r);
		t.q_aux[i] = snap_get_bool(r);
	}
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&k->lock);
	k->ctr = t.ctr;
	k->outp = t.outp;
	k->pending = t.pending;
	k->last_cmd = t.last_cmd;
	k->last_out = t.last_out;
	memcpy(k->q, t.q, sizeof(k->q));
	memcpy(k->q_aux, t.q_aux, sizeof(k->q_aux));
	k->q_head = 0;
	k->q_count = t.q_count;
	bool aux = k->q_count && k->q_aux[0];
	k->kbd_level = k->q_count && !aux && (k->ctr & I8042_CTR_KBDINT);
	k->aux_level = aux && (k->ctr & I8042_CTR_AUXINT);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static void i8042_destroy(void *opaque)
{
	struct i8042 *k = opaque;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int i8042_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->vm = vm;
	k->ctr = I8042_CTR_RESET;
	k->outp = I8042_OUTP_RESET | I8042_OUTP_A20;
	k->last_cmd = true;
	/* From here the machine owns (k): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, i8042_destroy, k);
	if (ret < 0) {
		i8042_destroy(k);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, I8042_DATA_PORT, 1, i8042_data_access, k,
	                   "i8042-data");
	if (ret < 0)
		return ret;
	ret = bus_register(&vm->io_bus, vm->guest, I8042_CMD_PORT, 1, i8042_cmd_access, k,
	                   "i8042-cmd");
	if (ret < 0)
		return ret;
	return vm_add_snapshot(vm, "i8042", 1, i8042_snap_save, i8042_snap_load, k);
}
