/* virtqueue.c: libFuzzer target of the split-virtqueue walker
 * (vmm/dev/virtqueue.c). The input is
 *   le16 Queue Size, le32 descriptor / driver / device area GPAs,
 *   one byte of actions, then guest RAM at GPA 0 (the rest).
 * Chains are popped until the ring is empty or broken; each is checked
 * (segments inside guest RAM, lengths adding up, readable before
 * writable), copied from and into as a device does, and pushed back; some
 * are given back with vq_unpop and must come out again the same. */
#include <errno.h>

#include "fuzz.h"

#include "../vmm/dev/virtqueue.c"

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	(void)vm;
	if (gpa > fuzz_mem_size || len > fuzz_mem_size - gpa)
		return NULL;
	return fuzz_mem + gpa;
}

static struct vq vq;
static struct vq_chain chain, again;
static uint8_t scratch[1 << 16];

static void check_chain(const struct vq_chain *c)
{
	size_t out = 0, in = 0;

	FUZZ_CHECK(c->head < vq.size);
	FUZZ_CHECK(c->nr_out + c->nr_in <= VQ_MAX_CHAIN);
	for (unsigned i = 0; i < c->nr_out + c->nr_in; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		size_t len = c->iov[i].iov_len;

		FUZZ_CHECK(len > 0); /* empty descriptors are left out */
		FUZZ_CHECK(p >= fuzz_mem && len <= fuzz_mem_size &&
		           (size_t)(p - fuzz_mem) <= fuzz_mem_size - len);
		if (i < c->nr_out)
			out += len;
		else
			in += len;
	}
	FUZZ_CHECK(out == c->out_len && in == c->in_len);
	FUZZ_CHECK((uint64_t)out + in <= UINT32_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	uint16_t qsize = fz16(&r);
	uint32_t desc = fz32(&r), avail = fz32(&r), used = fz32(&r);
	uint8_t actions = fz8(&r);
	struct vm vm = { 0 };
	unsigned pops = 0;

	fuzz_mem_set(r.p, r.n);
	vq_init(&vq, &vm, VQ_MAX_SIZE);
	vq.size = qsize;
	vq.desc_gpa = desc;
	vq.avail_gpa = avail;
	vq.used_gpa = used;
	if (vq_enable(&vq) < 0) {
		FUZZ_CHECK(!vq.ready && vq_pop(&vq, &chain) == 0 && !vq_has_avail(&vq));
		return 0;
	}
	FUZZ_CHECK(vq.ready);
	/* At most a ring's worth of chains can be waiting (more is an error). */
	for (;;) {
		bool has = vq_has_avail(&vq);
		int ret = vq_pop(&vq, &chain);

		FUZZ_CHECK(ret == 0 || ret == 1 || ret == -EINVAL || ret == -EFAULT);
		FUZZ_CHECK(has == (ret != 0));
		if (ret < 0) {
			FUZZ_CHECK(vq_pop(&vq, &chain) == -EIO); /* broken until reset */
			break;
		}
		if (ret == 0)
			break;
		FUZZ_CHECK(++pops <= vq.size);
		check_chain(&chain);
		if (actions & 1) {
			/* Given back, it comes out the same. */
			vq_unpop(&vq, 1);
			FUZZ_CHECK(vq_pop(&vq, &again) == 1);
			FUZZ_CHECK(again.head == chain.head && again.nr_out == chain.nr_out &&
			           again.nr_in == chain.nr_in && again.out_len == chain.out_len &&
			           again.in_len == chain.in_len);
		}
		size_t skip = (actions >> 1) & 7;
		size_t got = vq_iov_read(chain.iov, chain.nr_out, skip, scratch, sizeof(scratch));
		FUZZ_CHECK(got == (chain.out_len > skip ?
		                   (chain.out_len - skip < sizeof(scratch) ? chain.out_len - skip :
		                                                             sizeof(scratch)) : 0));
		struct iovec slice[VQ_MAX_CHAIN];
		size_t covered;
		unsigned n = vq_iov_slice(chain.iov, chain.nr_out, skip, got, slice, VQ_MAX_CHAIN,
		                          &covered);
		FUZZ_CHECK(covered == got && n <= chain.nr_out);
		memset(scratch, 0x5a, sizeof(scratch));
		size_t put = vq_iov_write(chain.iov + chain.nr_out, chain.nr_in, skip, scratch,
		                          chain.in_len < sizeof(scratch) ? chain.in_len : sizeof(scratch));
		FUZZ_CHECK(put <= chain.in_len);
		vq_push(&vq, chain.head, (uint32_t)put);
		(void)vq_notify_needed(&vq);
		if (fuzz_verbose())
			fprintf(stderr, "chain %u: %u out (%zu bytes), %u in (%zu bytes)\n",
			        chain.head, chain.nr_out, chain.out_len, chain.nr_in, chain.in_len);
	}
	if (fuzz_verbose())
		fprintf(stderr, "%u chains, broken %d\n", pops, vq.broken);
	return 0;
}
