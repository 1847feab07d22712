/* insn_cache.c: the per-vCPU memo of instruction lengths (insn_cache.h). */
#include "insn_cache.h"

#include <string.h>

static struct insn_cache_entry *slot(struct insn_cache *c, uint64_t la, bool write)
{
	uint64_t h = (la ^ (la >> 7) ^ (la >> 17)) * 2 + (write ? 1 : 0);
	return &c->e[h & (INSN_CACHE_SLOTS - 1)];
}

const struct insn_cache_entry *insn_cache_lookup(struct insn_cache *c, uint64_t la, unsigned mode, bool write,
                           unsigned access_size, const uint8_t *bytes, size_t n)
{
	const struct insn_cache_entry *e = slot(c, la, write);
	if (e->valid && e->la == la && e->mode == mode && e->write == write &&
	    e->access_size == access_size && n >= e->nbytes && (!write || n == e->nbytes) &&
	    memcmp(e->bytes, bytes, e->nbytes) == 0) {
		c->hits++;
		return e;
	}
	c->misses++;
	return NULL;
}

struct insn_cache_entry *insn_cache_store(struct insn_cache *c, uint64_t la, unsigned mode, bool write,
                      unsigned access_size, const uint8_t *bytes, size_t nbytes,
                      uint16_t value)
{
	if (nbytes == 0 || nbytes > INSN_CACHE_BYTES || value == 0 ||
	    access_size > 255 || mode > 255)
		return NULL;
	struct insn_cache_entry *e = slot(c, la, write);
	e->valid = 1;
	e->la = la;
	e->mode = (uint8_t)mode;
	e->write = write;
	e->access_size = (uint8_t)access_size;
	e->nbytes = (uint8_t)nbytes;
	e->value = value;
	memcpy(e->bytes, bytes, nbytes);
	memset(&e->ea, 0, sizeof(e->ea));
	return e;
}
