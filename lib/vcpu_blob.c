/* vcpu_blob.c: the vCPU blob format (zhv.h, "Snapshots"): writing a blob
 * into a caller's buffer and checking one completely before anything of it
 * is used. No KVM here: the unit tests run it natively. */
#include <linux/kvm.h>
#include <string.h>

#include "vcpu_blob.h"

static const char blob_magic[8] = "ZHVVCPU";

/* Header field offsets. */
#define H_MAGIC 0
#define H_VERSION 8
#define H_HDRSIZE 12
#define H_TOTAL 16
#define H_NSEC 24
#define H_CRC 28
#define H_MODEL 32
#define H_APIC 40
#define H_RESERVED 44

/* The exact payload size of each fixed-size section (0: variable). */
static const uint32_t sec_fixed_size[BLOB_SEC_COUNT] = {
	[BLOB_SEC_REGS] = sizeof(struct kvm_regs),
	[BLOB_SEC_SREGS] = sizeof(struct kvm_sregs),
	[BLOB_SEC_XSAVE] = sizeof(struct kvm_xsave),
	[BLOB_SEC_XCRS] = sizeof(struct kvm_xcrs),
	[BLOB_SEC_DEBUGREGS] = sizeof(struct kvm_debugregs),
	[BLOB_SEC_MSRS] = 0,
	[BLOB_SEC_LAPIC] = sizeof(struct kvm_lapic_state),
	[BLOB_SEC_EVENTS] = sizeof(struct kvm_vcpu_events),
	[BLOB_SEC_MPSTATE] = sizeof(struct kvm_mp_state),
	[BLOB_SEC_TRACKER] = 8,
};

static const bool sec_required[BLOB_SEC_COUNT] = {
	[BLOB_SEC_REGS] = true,    [BLOB_SEC_SREGS] = true,   [BLOB_SEC_XSAVE] = true,
	[BLOB_SEC_MSRS] = true,    [BLOB_SEC_LAPIC] = true,   [BLOB_SEC_EVENTS] = true,
	[BLOB_SEC_MPSTATE] = true, [BLOB_SEC_TRACKER] = true,
};

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

uint32_t blob_crc32(uint32_t crc, const void *buf, size_t len)
{
	static uint32_t table[256];
	static _Atomic int ready;
	if (!ready) {
		/* Idempotent: racing threads write the same values. */
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
			__atomic_store_n(&table[i], c, __ATOMIC_RELAXED);
		}
		ready = 1;
	}
	const uint8_t *p = buf;
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = __atomic_load_n(&table[(crc ^ p[i]) & 0xff], __ATOMIC_RELAXED) ^ (crc >> 8);
	return ~crc;
}

/* The CRC of a whole blob with its CRC field read as 0. */
static uint32_t blob_crc(const uint8_t *b, size_t len)
{
	static const uint8_t zero[4];
	uint32_t c = blob_crc32(0, b, H_CRC);
	c = blob_crc32(c, zero, sizeof(zero));
	return blob_crc32(c, b + H_CRC + 4, len - H_CRC - 4);
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

zhv_status_t blob_check(const void *buf, size_t len, struct blob_view *view)
{
	const uint8_t *b = buf;
	if (!b || !view || len < ZHV_VCPU_BLOB_HEADER_SIZE)
		return ZHV_ERR_INVALID_ARGS;
	if (memcmp(b + H_MAGIC, blob_magic, sizeof(blob_magic)) != 0)
		return ZHV_ERR_INVALID_ARGS;
	/* The version first: a blob of another version may lay out
	 * everything after it differently. */
	if (rd32(b + H_VERSION) != ZHV_VCPU_BLOB_VERSION)
		return ZHV_ERR_NOT_SUPPORTED;
	if (rd32(b + H_HDRSIZE) != ZHV_VCPU_BLOB_HEADER_SIZE || rd32(b + H_RESERVED) != 0)
		return ZHV_ERR_INVALID_ARGS;
	uint64_t total = rd64(b + H_TOTAL);
	if (total != len || total > ZHV_VCPU_BLOB_MAX)
		return ZHV_ERR_INVALID_ARGS; /* truncated, over-long or absurd */
	if (blob_crc(b, len) != rd32(b + H_CRC))
		return ZHV_ERR_IO_DATA_INTEGRITY;

	memset(view, 0, sizeof(*view));
	uint32_t nsec = rd32(b + H_NSEC);
	size_t off = ZHV_VCPU_BLOB_HEADER_SIZE;
	for (uint32_t i = 0; i < nsec; i++) {
		if (len - off < 8)
			return ZHV_ERR_INVALID_ARGS;
		uint32_t type = rd32(b + off), size = rd32(b + off + 4);
		off += 8;
		if (type == 0 || type >= BLOB_SEC_COUNT || view->sec[type])
			return ZHV_ERR_INVALID_ARGS; /* unknown or repeated */
		if (size > len - off || pad8(size) > len - off)
			return ZHV_ERR_INVALID_ARGS;
		const uint8_t *p = b + off;
		if (sec_fixed_size[type] && size != sec_fixed_size[type])
			return ZHV_ERR_INVALID_ARGS;
		if (type == BLOB_SEC_MSRS) {
			if (size < 8)
				return ZHV_ERR_INVALID_ARGS;
			uint32_t count = rd32(p);
			if (count > BLOB_MSRS_MAX || rd32(p + 4) != 0 ||
			    size != 8 + (size_t)count * BLOB_MSR_ENTRY_SIZE)
				return ZHV_ERR_INVALID_ARGS;
		}
		for (size_t k = size; k < pad8(size); k++)
			if (p[k] != 0)
				return ZHV_ERR_INVALID_ARGS;
		view->sec[type] = p;
		view->sec_size[type] = size;
		off += pad8(size);
	}
	if (off != len)
		return ZHV_ERR_INVALID_ARGS; /* bytes after the last section */
	for (uint32_t t = 1; t < BLOB_SEC_COUNT; t++)
		if (sec_required[t] && !view->sec[t])
			return ZHV_ERR_INVALID_ARGS;
	view->info.version = ZHV_VCPU_BLOB_VERSION;
	view->info.apic_id = rd32(b + H_APIC);
	view->info.model = rd64(b + H_MODEL);
	view->info.size = total;
	view->info.nsections = nsec;
	return ZHV_OK;
}

zhv_status_t zhv_vcpu_blob_info(const void *buf, size_t len, zhv_vcpu_blob_info_t *info)
{
	if (!info)
		return ZHV_ERR_INVALID_ARGS;
	struct blob_view v;
	zhv_status_t st = blob_check(buf, len, &v);
	if (st == ZHV_OK)
		*info = v.info;
	return st;
}

void blob_begin(struct blob_writer *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->len = ZHV_VCPU_BLOB_HEADER_SIZE;
	w->nsections = 0;
}

void blob_add(struct blob_writer *w, uint32_t type, const void *payload, uint32_t size)
{
	size_t need = 8 + pad8(size);
	if (w->len + need <= w->cap) {
		uint8_t *p = w->buf + w->len;
		wr32(p, type);
		wr32(p + 4, size);
		memcpy(p + 8, payload, size);
		memset(p + 8 + size, 0, pad8(size) - size);
	}
	w->len += need;
	w->nsections++;
}

bool blob_finish(struct blob_writer *w, uint64_t model, uint32_t apic_id)
{
	if (w->len > w->cap)
		return false;
	uint8_t *b = w->buf;
	memcpy(b + H_MAGIC, blob_magic, sizeof(blob_magic));
	wr32(b + H_VERSION, ZHV_VCPU_BLOB_VERSION);
	wr32(b + H_HDRSIZE, ZHV_VCPU_BLOB_HEADER_SIZE);
	wr64(b + H_TOTAL, w->len);
	wr32(b + H_NSEC, w->nsections);
	wr32(b + H_CRC, 0);
	wr64(b + H_MODEL, model);
	wr32(b + H_APIC, apic_id);
	wr32(b + H_RESERVED, 0);
	wr32(b + H_CRC, blob_crc(b, w->len));
	return true;
}
