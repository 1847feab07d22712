/* fw_cfg.c: QEMU's fw_cfg I/O interface (selector 0x510, data 0x511) with the signature, ID, RAM size and CPU count; other keys read 0. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* clang-format off */
/* QEMU docs/specs/fw_cfg.rst: "Selector (Control) Register" at 0x510
 * (16-bit write), "Data Register" at 0x511 (8-bit, auto-incrementing). */
#define FW_CFG_PORT        0x510u
#define FW_CFG_SEL_OFF     0
#define FW_CFG_DATA_OFF    1

/* Keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h). Integers are
 * little-endian (fw_cfg_add_i16/i32/i64). */
#define FW_CFG_SIGNATURE   0x0000 /* "QEMU" */
#define FW_CFG_ID          0x0001 /* bit 0: traditional interface; no DMA (bit 1) */
#define FW_CFG_UUID        0x0002
#define FW_CFG_RAM_SIZE    0x0003
#define FW_CFG_NB_CPUS     0x0005
#define FW_CFG_MAX_CPUS    0x000F

#define FW_CFG_ITEM_MAX    16
/* clang-format on */

struct fw_cfg {
	pthread_mutex_t lock;
	struct vm *vm;
	uint16_t selector;
	uint32_t offset;
	uint8_t item[FW_CFG_ITEM_MAX];
	uint32_t item_len;
};

static void fw_cfg_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Select (key): the item's bytes, read from offset 0. Unknown keys have
 * no bytes: every read returns 0, as QEMU does. */
static void fw_cfg_select(struct fw_cfg *f, uint16_t key)
{
	f->selector = key;
	f->offset = 0;
	f->item_len = 0;
	memset(f->item, 0, sizeof(f->item));
	switch (key) {
	case FW_CFG_SIGNATURE:
		memcpy(f->item, "QEMU", 4);
		f->item_len = 4;
		break;
	case FW_CFG_ID:
		fw_cfg_put_le(f->item, 1, 4);
		f->item_len = 4;
		break;
	case FW_CFG_UUID:
		f->item_len = 16; /* all zero: no UUID */
		break;
	case FW_CFG_RAM_SIZE:
		fw_cfg_put_le(f->item, f->vm->ram_size, 8);
		f->item_len = 8;
		break;
	case FW_CFG_NB_CPUS:
	case FW_CFG_MAX_CPUS:
		fw_cfg_put_le(f->item, f->vm->ncpus, 2);
		f->item_len = 2;
		break;
	default:
		break;
	}
}

static uint8_t fw_cfg_read_data(struct fw_cfg *f)
{
	if (f->offset >= f->item_len)
		return 0;
	return f->item[f->offset++];
}

static void fw_cfg_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                          unsigned size)
{
	struct fw_cfg *f = opaque;
	pthread_mutex_lock(&f->lock);
	if (write) {
		/* Any write starting at the selector selects (QEMU takes the
		 * 16-bit value); data-port writes are ignored (deprecated). */
		if (offset == FW_CFG_SEL_OFF)
			fw_cfg_select(f, (uint16_t)(data[0] | (size > 1 ? data[1] << 8 : 0)));
	} else {
		for (unsigned i = 0; i < size; i++) {
			uint64_t reg = offset + i;
			data[i] = reg == FW_CFG_DATA_OFF ? fw_cfg_read_data(f) : 0;
		}
	}
	pthread_mutex_unlock(&f->lock);
}

/* ---- snapshot (snapshot.h): section "fw_cfg", version 1 ------------------
 * The selected key (u16) and the offset in its item (u32); the item's
 * bytes follow from the key and the machine (RAM size, CPUs), which a
 * restore creates the same. There is no DMA interface. */

static int fw_cfg_snap_save(void *opaque, struct snap_writer *w)
{
	struct fw_cfg *f = opaque;
	pthread_mutex_lock(&f->lock);
	snap_put_u16(w, f->selector);
	snap_put_u32(w, f->offset);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fw_cfg_snap_load(void *opaque, struct snap_reader *r)
{
	struct fw_cfg *f = opaque;
	uint16_t selector = snap_get_u16(r);
	uint32_t offset = snap_get_u32(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	struct fw_cfg t = {.vm = f->vm};
	fw_cfg_select(&t, selector);
	if (offset > t.item_len)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	fw_cfg_select(f, selector);
	f->offset = offset;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fw_cfg_destroy(void *opaque)
{
	struct fw_cfg *f = opaque;
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int fw_cfg_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct fw_cfg *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->vm = vm;
	fw_cfg_select(f, FW_CFG_SIGNATURE);
	/* From here the machine owns (f): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, fw_cfg_destroy, f);
	if (ret < 0) {
		fw_cfg_destroy(f);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, FW_CFG_PORT, 2, fw_cfg_access, f, "fw_cfg");
	if (ret < 0)
		return ret;
	return vm_add_snapshot(vm, "fw_cfg", 1, fw_cfg_snap_save, fw_cfg_snap_load, f);
}
