/* trap_map.c: libFuzzer target of the trap map (lib/trap_map.c), checked
 * against a plain list. The input is operations of 18 bytes: byte 0 (op %
 * 2: 0 insert, 1 find; kind = byte 1 % 4, 3 an unknown kind), le64
 * address, le64 length (inserts; finds use the address). BELL inserts
 * pass a port, the others none (byte 0 bit 7 swaps that: a wrong-port
 * insert must fail with INVALID_ARGS). */
#include "fuzz.h"

#include "trap_map.h"

#define MAX_MODEL 512

struct model_trap {
	uint32_t space; /* 0 MEM/BELL, 1 IO */
	uint64_t addr, len, key;
};
static struct model_trap model[MAX_MODEL];
static size_t nmodel;

static uint32_t space_of(uint32_t kind)
{
	return kind == ZHV_TRAP_IO ? 1 : 0;
}

static zhv_status_t model_insert(uint32_t kind, uint64_t addr, uint64_t len, bool port_ok)
{
	uint64_t end;

	if (kind > ZHV_TRAP_IO || !port_ok)
		return ZHV_ERR_INVALID_ARGS;
	if (len == 0 || __builtin_add_overflow(addr, len, &end) ||
	    end > (kind == ZHV_TRAP_IO ? 0xFFFFull : ZHV_GUEST_PHYS_SIZE))
		return ZHV_ERR_OUT_OF_RANGE;
	for (size_t i = 0; i < nmodel; i++)
		if (model[i].space == space_of(kind) && addr < model[i].addr + model[i].len &&
		    model[i].addr < end)
			return ZHV_ERR_ALREADY_EXISTS;
	return ZHV_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static zhv_port_t *port;
	struct fuzz_reader r = { data, size };
	struct trap_map map;
	uint64_t key = 0;

	if (!port && zhv_port_create(16, &port) != ZHV_OK)
		abort();
	trap_map_init(&map);
	nmodel = 0;
	while (r.n) {
		uint8_t op = fz8(&r);
		uint32_t kind = fz8(&r) % 4;
		uint64_t addr = fz64(&r), len = fz64(&r);

		if ((op & 1) == 0) {
			bool swap = op & 0x80;
			zhv_port_t *p = (kind == ZHV_TRAP_BELL) != swap ? port : NULL;
			bool port_ok = (kind == ZHV_TRAP_BELL) == (p != NULL);
			zhv_status_t want = model_insert(kind, addr, len, port_ok);

			if (want == ZHV_OK && nmodel == MAX_MODEL)
				continue;
			zhv_status_t got = trap_map_insert(&map, kind, addr, len, p, key);
			FUZZ_CHECK(got == want);
			if (got == ZHV_OK)
				model[nmodel++] = (struct model_trap){ space_of(kind), addr, len, key++ };
		} else {
			const struct trap *t = trap_map_find(&map, kind, addr);
			size_t i;

			for (i = 0; i < nmodel; i++)
				if (kind <= ZHV_TRAP_IO && model[i].space == space_of(kind) &&
				    addr >= model[i].addr && addr - model[i].addr < model[i].len)
					break;
			if (i == nmodel) {
				FUZZ_CHECK(t == NULL);
			} else {
				FUZZ_CHECK(t != NULL && t->key == model[i].key &&
				           t->addr == model[i].addr && t->len == model[i].len);
			}
		}
	}
	trap_map_release_ports(&map);
	trap_map_destroy(&map);
	return 0;
}
