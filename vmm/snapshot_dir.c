/* snapshot_dir.c: zhv run's snapshot directory: manifest (text), state
 * (vCPUs, clock, device sections) and memory (raw guest RAM); written into
 * a fresh directory and renamed into place, read back with every check. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_dir.h"
#include "vcpu_state.h"

#define MANIFEST "manifest"
#define STATE "state"
#define MEMORY "memory"
#define STATE_MAGIC "ZHVSTATE"
#define MANIFEST_MAX (64u * 1024u)
#define STATE_MAX (64ull << 20)
#define IO_CHUNK (1u << 20)

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- checksum -------------------------------------------------------------
 * 64-bit, over 8-byte little-endian words (a tail zero-padded), seeded with
 * the length: detects corruption and truncation, not tampering. */
static uint64_t hash_update(uint64_t h, const uint8_t *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 31;
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 31;
	}
	return h;
}
#define HASH_SEED 0xcbf29ce484222325ull

/* ---- writing ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n > IO_CHUNK ? IO_CHUNK : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* (name) in directory fd (dfd): created, written, synced, closed. */
static int write_file(int dfd, const char *name, const uint8_t *p, size_t n)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int ret = write_all(fd, p, n);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

#define PAGE 4096u

static bool page_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];
	return !memcmp(p, zero, PAGE);
}

/* The memory checksum covers the pages that are not all zero, each with
 * its index, in address order: a page zeroed or a hole filled changes it
 * as any other corruption does, and a restore need not look at holes. */
static uint64_t hash_page(uint64_t h, uint64_t index, const uint8_t *p)
{
	uint8_t ix[8];
	for (int i = 0; i < 8; i++)
		ix[i] = (uint8_t)(index >> (8 * i));
	return hash_update(hash_update(h, ix, 8), p, PAGE);
}

/* Guest RAM as the memory file, in the order of the host mapping (low RAM,
 * then RAM above 4 GiB): pages that are all zero are left as holes (the
 * file is sparse where the filesystem allows), so that writing, reading
 * and restoring cost what the guest has touched. */
static int write_memory(int dfd, struct vm *vm, uint64_t *hash)
{
	int fd = openat(dfd, MEMORY, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	uint64_t h = HASH_SEED ^ vm->ram_size, npages = vm->ram_size / PAGE;
	int ret = 0;
	for (uint64_t i = 0; i < npages && ret == 0;) {
		if (page_zero(vm->ram + i * PAGE)) {
			i++;
			continue;
		}
		uint64_t j = i; /* a run of pages with data, at most IO_CHUNK */
		while (j < npages && (j - i) * PAGE < IO_CHUNK && !page_zero(vm->ram + j * PAGE)) {
			h = hash_page(h, j, vm->ram + j * PAGE);
			j++;
		}
		const uint8_t *p = vm->ram + i * PAGE;
		size_t n = (size_t)((j - i) * PAGE);
		off_t off = (off_t)(i * PAGE);
		while (n > 0 && ret == 0) {
			ssize_t w = pwrite(fd, p, n, off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				ret = w < 0 ? -errno : -EIO;
			else {
				p += w;
				n -= (size_t)w;
				off += w;
			}
		}
		i = j;
	}
	if (ret == 0 && ftruncate(fd, (off_t)vm->ram_size) < 0)
		ret = -errno;
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	*hash = h;
	return ret;
}

/* The memory file into guest RAM (zeroed, as created): only pages with
 * data are read (SEEK_DATA skips holes where the filesystem knows them)
 * and only pages that are not all zero are copied, so that guest RAM the
 * guest never touched stays untouched. Returns the checksum or sets *err. */
static int read_memory(int fd, struct vm *vm, uint64_t *hash)
{
	uint64_t h = HASH_SEED ^ vm->ram_size, size = vm->ram_size;
	uint8_t *buf = malloc(IO_CHUNK);
	if (!buf)
		return -ENOMEM;
	int ret = 0;
	off_t pos = 0;
	while ((uint64_t)pos < size && ret == 0) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno != ENXIO) /* ENXIO: only a hole is left */
				ret = -errno;
			break;
		}
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		data &= ~(off_t)(PAGE - 1);
		for (off_t at = data; at < hole && ret == 0;) {
			size_t n = (size_t)(hole - at) < IO_CHUNK ? (size_t)(hole - at) : IO_CHUNK;
			n = (n + PAGE - 1) & ~(size_t)(PAGE - 1);
			if ((uint64_t)at + n > size)
				n = (size_t)(size - (uint64_t)at);
			ssize_t r = pread(fd, buf, n, at);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < (ssize_t)n) {
				ret = r < 0 ? -errno : -ENODATA;
				break;
			}
			for (size_t o = 0; o < n; o += PAGE) {
				if (page_zero(buf + o))
					continue;
				uint64_t index = ((uint64_t)at + o) / PAGE;
				h = hash_page(h, index, buf + o);
				memcpy(vm->ram + index * PAGE, buf + o, PAGE);
			}
			at += (off_t)n;
		}
		pos = hole;
	}
	free(buf);
	*hash = h;
	return ret;
}

static void remove_snapshot_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		unlinkat(dfd, MANIFEST, 0);
		unlinkat(dfd, STATE, 0);
		unlinkat(dfd, MEMORY, 0);
		close(dfd);
	}
	rmdir(dir);
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static int build_state(struct vm *vm, struct vcpus *v, struct snap_writer *w,
                       char *err, size_t errlen)
{
	uint8_t *blobs[256] = {0};
	size_t lens[256] = {0};
	zhv_guest_clock_t clock;
	zhv_status_t st = zhv_guest_get_clock(vm->guest, &clock);
	if (st != ZHV_OK) {
		fail(err, errlen, "cannot read the guest's clock: %s", zhv_status_string(st));
		return -EIO;
	}
	int ret = vcpus_save(v, blobs, lens);
	if (ret < 0) {
		fail(err, errlen, "cannot save the vCPUs: %s",
		     ret == -ECANCELED ? "the run ended" : strerror(-ret));
		return ret;
	}
	snap_put(w, STATE_MAGIC, 8);
	snap_put_u32(w, SNAPSHOT_FORMAT_VERSION);
	snap_put_u32(w, vm->ncpus);
	snap_put_u64(w, clock.ns);
	snap_put_u64(w, clock.host_tsc);
	snap_put_u32(w, clock.flags);
	snap_put_u32(w, 0);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		snap_put_u32(w, (uint32_t)lens[i]);
		snap_put(w, blobs[i], lens[i]);
		free(blobs[i]);
	}
	snap_put_u32(w, vm->nsnapshots);
	for (unsigned i = 0; i < vm->nsnapshots && !w->err; i++) {
		const struct snap_section *s = &vm->snapshots[i];
		size_t nlen = strlen(s->name);
		snap_put_u8(w, (uint8_t)nlen);
		snap_put(w, s->name, nlen);
		snap_put_u32(w, s->version);
		size_t at = w->len;
		snap_put_u32(w, 0); /* the section's length, below */
		ret = s->save(s->opaque, w);
		if (ret < 0) {
			fail(err, errlen, "device %s cannot be saved: %s", s->name,
			     ret == -ENOTSUP ? "not supported (its state lives outside zhv)" :
			     ret == -EBUSY   ? "busy, try again" : strerror(-ret));
			return ret;
		}
		if (!w->err) {
			uint64_t n = w->len - at - 4;
			if (n > UINT32_MAX) {
				fail(err, errlen, "device %s: state too large", s->name);
				return -EFBIG;
			}
			for (int b = 0; b < 4; b++)
				w->buf[at + (size_t)b] = (uint8_t)(n >> (8 * b));
		}
	}
	if (w->err) {
		fail(err, errlen, "out of memory");
		return w->err;
	}
	return 0;
}

static int manifest_text(char *buf, size_t cap, const struct snapshot_machine *m,
                         uint64_t mem_bytes, uint64_t mem_hash, size_t state_len,
                         uint64_t state_hash)
{
	size_t n = 0;
#define ADD(...)                                                                   \
	do {                                                                       \
		int r_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);    \
		if (r_ < 0 || (size_t)r_ >= cap - n)                               \
			return -ENAMETOOLONG;                                      \
		n += (size_t)r_;                                                   \
	} while (0)
	ADD("zhv-snapshot %u\n", SNAPSHOT_FORMAT_VERSION);
	ADD("cpus %u\n", m->ncpus);
	ADD("memory %" PRIu64 "\n", m->mem_size);
	ADD("debug-exit %d\n", m->debug_exit);
	ADD("pc-testdev %d\n", m->pc_testdev);
	ADD("pci-testdev %d\n", m->pci_testdev);
	ADD("virtio-console %d\n", m->virtio_console);
	ADD("disks %zu\n", m->ndisks);
	for (size_t i = 0; i < m->ndisks; i++)
		ADD("disk %s %s\n", m->disks[i].read_only ? "ro" : "rw", m->disks[i].path);
	ADD("memory-file %" PRIu64 " %016" PRIx64 "\n", mem_bytes, mem_hash);
	ADD("state-file %zu %016" PRIx64 "\n", state_len, state_hash);
	uint64_t h = hash_update(HASH_SEED ^ n, (const uint8_t *)buf, n);
	ADD("end %016" PRIx64 "\n", h);
#undef ADD
	return (int)n;
}

int snapshot_take(const char *dir, struct vm *vm, struct vcpus *v,
                  const struct snapshot_machine *m, bool stay_paused, char *err, size_t errlen)
{
	if (dir[0] != '/' || strchr(dir, '\n') || strlen(dir) > 3000) {
		fail(err, errlen, "snapshot: '%s': an absolute path without newlines is needed", dir);
		return -EINVAL;
	}
	if (m->nnets) {
		fail(err, errlen, "snapshot: a TAP network device (--net) cannot be saved: its "
		     "state lives in the host's network");
		return -ENOTSUP;
	}
	for (size_t i = 0; i < m->ndisks; i++)
		if (strchr(m->disks[i].path, '\n') || m->disks[i].path[0] != '/') {
			fail(err, errlen, "snapshot: a disk path holds a newline");
			return -EINVAL;
		}
	bool was_paused = vcpus_paused(v);
	if (!was_paused) {
		int r = vcpus_pause(v, 5000);
		if (r < 0) {
			fail(err, errlen, "cannot pause the vCPUs: %s",
			     r == -ETIMEDOUT ? "they did not stop within 5 s (asleep in ACPI S3?)" :
			                       "the run is ending");
			return r;
		}
	}
	struct snap_writer w = {0};
	char *manifest = malloc(MANIFEST_MAX);
	char tmp[3100];
	bool made = false;
	int dfd = -1;
	int ret = manifest ? 0 : -ENOMEM;
	if (ret < 0)
		fail(err, errlen, "out of memory");
	/* Device threads finish what is in flight and take no new work
	 * until the memory is written: state and memory then agree. */
	vm_devices_quiesce(vm);
	if (ret == 0)
		ret = build_state(vm, v, &w, err, errlen);
	if (ret == 0) {
		snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dir);
		if (!mkdtemp(tmp)) {
			ret = -errno;
			fail(err, errlen, "snapshot: cannot create a directory beside %s: %s", dir,
			     strerror(errno));
		} else {
			made = true;
			dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0) {
				ret = -errno;
				fail(err, errlen, "snapshot: %s: %s", tmp, strerror(errno));
			}
		}
	}
	uint64_t mem_hash = 0;
	if (ret == 0 && (ret = write_memory(dfd, vm, &mem_hash)) < 0)
		fail(err, errlen, "snapshot: writing %s/" MEMORY ": %s", tmp, strerror(-ret));
	vm_devices_resume(vm);
	/* The guest may run on while the files are synced and renamed. */
	if (!was_paused && !stay_paused)
		vcpus_resume(v);
	if (ret == 0 && (ret = write_file(dfd, STATE, w.buf, w.len)) < 0)
		fail(err, errlen, "snapshot: writing %s/" STATE ": %s", tmp, strerror(-ret));
	if (ret == 0) {
		int n = manifest_text(manifest, MANIFEST_MAX, m, vm->ram_size, mem_hash, w.len,
		                      hash_update(HASH_SEED ^ w.len, w.buf, w.len));
		ret = n < 0 ? n : write_file(dfd, MANIFEST, (const uint8_t *)manifest, (size_t)n);
		if (ret < 0)
			fail(err, errlen, "snapshot: writing %s/" MANIFEST ": %s", tmp, strerror(-ret));
	}
	if (ret == 0 && fsync(dfd) < 0) {
		ret = -errno;
		fail(err, errlen, "snapshot: syncing %s: %s", tmp, strerror(errno));
	}
	bool replaced = false;
	if (ret == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
		/* An old snapshot there: swap the two in one step, then remove it. */
		if (errno == EEXIST && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
			replaced = true;
		} else {
			ret = -errno;
			fail(err, errlen, "snapshot: cannot move %s to %s: %s", tmp, dir,
			     strerror(errno));
		}
	}
	if (ret == 0) {
		made = replaced; /* tmp now names the old snapshot, if any */
		char parent[3100];
		snprintf(parent, sizeof(parent), "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		sync_dir(parent);
	}
	if (dfd >= 0)
		close(dfd);
	if (made)
		remove_snapshot_dir(tmp);
	if (!was_paused && !stay_paused)
		vcpus_resume(v); /* (again: on the early errors) */
	snap_writer_free(&w);
	free(manifest);
	return ret;
}

/* ---- reading ------------------------------------------------------------------------ */

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n > IO_CHUNK ? IO_CHUNK : n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* (dir)/(name) opened, with its size. */
static int open_in(const char *dir, const char *name, uint64_t *size, char *err, size_t errlen)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fail(err, errlen, "snapshot %s: %s: %s", dir, name,
		     errno == ENOENT ? "missing (not a complete snapshot)" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(err, errlen, "snapshot %s: %s: not a regular file", dir, name);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

/* "KEY VALUE\n" lines of the manifest, one at a time. */
static char *next_line(char **cur)
{
	char *l = *cur, *nl = l ? strchr(l, '\n') : NULL;
	if (!nl)
		return NULL;
	*nl = '\0';
	*cur = nl + 1;
	return l;
}

static bool key_u64(char *line, const char *key, uint64_t *v)
{
	size_t k = strlen(key);
	if (!line || strncmp(line, key, k) || line[k] != ' ' || line[k + 1] < '0' ||
	    line[k + 1] > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long long x = strtoull(line + k + 1, &end, 10);
	if (errno || *end)
		return false;
	*v = x;
	return true;
}

static bool key_size_hash(char *line, const char *key, uint64_t *size, uint64_t *hash)
{
	size_t k = strlen(key);
	if (!line || strncmp(line, key, k) || line[k] != ' ')
		return false;
	char *end, *p = line + k + 1;
	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	*size = strtoull(p, &end, 10);
	if (errno || *end != ' ' || strlen(end + 1) != 16)
		return false;
	*hash = strtoull(end + 1, &p, 16);
	return !errno && !*p;
}

static int parse_manifest(struct snapshot_image *img, size_t len, char *err, size_t errlen)
{
	const char *dir = img->dir;
	char *t = img->text;
	/* The first line names the format and its version: checked first,
	 * as another version may lay out the rest differently. */
	unsigned long long ver = 0;
	char tail = 0;
	if (sscanf(t, "zhv-snapshot %llu%c", &ver, &tail) != 2 || tail != '\n') {
		fail(err, errlen, "snapshot %s: manifest: not a zhv snapshot", dir);
		return -1;
	}
	if (ver != SNAPSHOT_FORMAT_VERSION) {
		fail(err, errlen, "snapshot %s: format version %llu, this zhv reads version %u only",
		     dir, ver, SNAPSHOT_FORMAT_VERSION);
		return -1;
	}
	/* The last line: "end HASH" over everything before it. */
	char *last = len >= 22 && t[len - 1] == '\n' ? t + len - 21 : NULL;
	if (!last || strncmp(last, "end ", 4) || memchr(t, '\0', len)) {
		fail(err, errlen, "snapshot %s: manifest: truncated", dir);
		return -1;
	}
	size_t body = (size_t)(last - t);
	char *endp;
	uint64_t want = strtoull(last + 4, &endp, 16);
	if (*endp != '\n' || hash_update(HASH_SEED ^ body, (uint8_t *)t, body) != want) {
		fail(err, errlen, "snapshot %s: manifest: corrupted (checksum mismatch)", dir);
		return -1;
	}
	*last = '\0';
	char *cur = t;
	uint64_t v;
	char *l = next_line(&cur); /* the version, above */
	(void)l;
	struct snapshot_machine *m = &img->m;
	const char *bad = NULL;
	uint64_t de, pc, pci, vc, nd;
	if (!key_u64(next_line(&cur), "cpus", &v) || v < 1 || v > 255)
		bad = "cpus";
	else if ((m->ncpus = (unsigned)v), !key_u64(next_line(&cur), "memory", &m->mem_size) ||
	         m->mem_size < BOARD_MIN_MEMORY || m->mem_size % ZHV_PAGE_SIZE)
		bad = "memory";
	else if (!key_u64(next_line(&cur), "debug-exit", &de) || de > 1)
		bad = "debug-exit";
	else if (!key_u64(next_line(&cur), "pc-testdev", &pc) || pc > 1)
		bad = "pc-testdev";
	else if (!key_u64(next_line(&cur), "pci-testdev", &pci) || pci > 1)
		bad = "pci-testdev";
	else if (!key_u64(next_line(&cur), "virtio-console", &vc) || vc > 1)
		bad = "virtio-console";
	else if (!key_u64(next_line(&cur), "disks", &nd) || nd > SNAPSHOT_MAX_DISKS)
		bad = "disks";
	if (!bad) {
		m->debug_exit = de;
		m->pc_testdev = pc;
		m->pci_testdev = pci;
		m->virtio_console = vc;
		m->ndisks = nd;
		for (size_t i = 0; i < nd && !bad; i++) {
			l = next_line(&cur);
			if (!l || strncmp(l, "disk ", 5) || (strncmp(l + 5, "rw /", 4) &&
			                                     strncmp(l + 5, "ro /", 4)))
				bad = "disk";
			else {
				m->disks[i].read_only = l[5] == 'o' || l[6] == 'o';
				m->disks[i].path = l + 8;
			}
		}
	}
	uint64_t state_bytes;
	if (!bad && !key_size_hash(next_line(&cur), "memory-file", &img->mem_bytes, &img->mem_hash))
		bad = "memory-file";
	if (!bad && !key_size_hash(next_line(&cur), "state-file", &state_bytes, &v))
		bad = "state-file";
	if (!bad && *cur)
		bad = "trailing lines";
	if (bad) {
		fail(err, errlen, "snapshot %s: manifest: bad or missing '%s'", dir, bad);
		return -1;
	}
	if (img->mem_bytes != m->mem_size) {
		fail(err, errlen, "snapshot %s: manifest: memory file of %" PRIu64 " bytes for a "
		     "machine of %" PRIu64, dir, img->mem_bytes, m->mem_size);
		return -1;
	}
	if (state_bytes > STATE_MAX) {
		fail(err, errlen, "snapshot %s: manifest: state file too large", dir);
		return -1;
	}
	img->state_len = (size_t)state_bytes;
	img->mem_hash = img->mem_hash; /* checked as memory is read */
	/* The state file's checksum, for snapshot_open to check. */
	img->sections_off = (size_t)v; /* (temporarily: the expected hash) */
	return 0;
}

int snapshot_open(const char *dir, struct snapshot_image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof(*img));
	img->dir = strdup(dir);
	if (!img->dir) {
		fail(err, errlen, "out of memory");
		return -1;
	}
	uint64_t size;
	int fd = open_in(dir, MANIFEST, &size, err, errlen);
	if (fd < 0)
		return -1;
	if (size > MANIFEST_MAX) {
		close(fd);
		fail(err, errlen, "snapshot %s: manifest: too large", dir);
		return -1;
	}
	img->text = malloc(size + 1);
	int r = img->text ? read_all(fd, (uint8_t *)img->text, size) : -ENOMEM;
	close(fd);
	if (r < 0) {
		fail(err, errlen, "snapshot %s: manifest: %s", dir, strerror(-r));
		return -1;
	}
	img->text[size] = '\0';
	if (parse_manifest(img, size, err, errlen) < 0)
		return -1;
	uint64_t state_hash = img->sections_off;
	img->sections_off = 0;

	fd = open_in(dir, STATE, &size, err, errlen);
	if (fd < 0)
		return -1;
	if (size != img->state_len) {
		close(fd);
		fail(err, errlen, "snapshot %s: state: %" PRIu64 " bytes, the manifest says %zu "
		     "(truncated?)", dir, size, img->state_len);
		return -1;
	}
	img->state = malloc(img->state_len ? img->state_len : 1);
	r = img->state ? read_all(fd, img->state, img->state_len) : -ENOMEM;
	close(fd);
	if (r < 0) {
		fail(err, errlen, "snapshot %s: state: %s", dir, strerror(-r));
		return -1;
	}
	if (hash_update(HASH_SEED ^ img->state_len, img->state, img->state_len) != state_hash) {
		fail(err, errlen, "snapshot %s: state: corrupted (checksum mismatch)", dir);
		return -1;
	}
	struct snap_reader rd = {.p = img->state, .len = img->state_len};
	char magic[8];
	snap_get(&rd, magic, 8);
	uint32_t ver = snap_get_u32(&rd), ncpus = snap_get_u32(&rd);
	if (rd.err || memcmp(magic, STATE_MAGIC, 8) || ver != SNAPSHOT_FORMAT_VERSION ||
	    ncpus != img->m.ncpus) {
		fail(err, errlen, "snapshot %s: state: not of this manifest (magic, version or vCPU "
		     "count)", dir);
		return -1;
	}
	img->clock.ns = snap_get_u64(&rd);
	img->clock.host_tsc = snap_get_u64(&rd);
	img->clock.flags = snap_get_u32(&rd);
	img->clock.reserved = snap_get_u32(&rd);
	img->vcpu_blobs = calloc(ncpus, sizeof(*img->vcpu_blobs));
	img->vcpu_lens = calloc(ncpus, sizeof(*img->vcpu_lens));
	if (!img->vcpu_blobs || !img->vcpu_lens) {
		fail(err, errlen, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < ncpus; i++) {
		uint32_t n = snap_get_u32(&rd);
		if (rd.err || n > rd.len - rd.off) {
			fail(err, errlen, "snapshot %s: state: vCPU %u: truncated", dir, i + 1);
			return -1;
		}
		img->vcpu_blobs[i] = img->state + rd.off;
		img->vcpu_lens[i] = n;
		rd.off += n;
		zhv_status_t st = vcpu_state_check(img->vcpu_blobs[i], n);
		if (st != ZHV_OK) {
			fail(err, errlen, "snapshot %s: vCPU %u: %s", dir, i + 1, vcpu_state_error(st));
			return -1;
		}
	}
	img->sections_off = rd.off;
	return 0;
}

int snapshot_apply(struct snapshot_image *img, struct vm *vm, char *err, size_t errlen)
{
	const char *dir = img->dir;
	if (vm->ram_size != img->m.mem_size || vm->ncpus != img->m.ncpus) {
		fail(err, errlen, "snapshot %s: the machine does not match its manifest", dir);
		return -1;
	}
	/* Guest memory first (a device's state may refer to it), checked as it
	 * is read; no vCPU runs before all is in place. */
	uint64_t size;
	int fd = open_in(dir, MEMORY, &size, err, errlen);
	if (fd < 0)
		return -1;
	if (size != vm->ram_size) {
		close(fd);
		fail(err, errlen, "snapshot %s: memory: %" PRIu64 " bytes for a machine of %" PRIu64
		     " (truncated or of another memory size)", dir, size, vm->ram_size);
		return -1;
	}
	uint64_t h;
	int r = read_memory(fd, vm, &h);
	close(fd);
	if (r < 0) {
		fail(err, errlen, "snapshot %s: memory: %s", dir, strerror(-r));
		return -1;
	}
	if (h != img->mem_hash) {
		fail(err, errlen, "snapshot %s: memory: corrupted (checksum mismatch)", dir);
		return -1;
	}
	/* Device sections: the same devices, in the same order, same versions. */
	struct snap_reader rd = {.p = img->state, .len = img->state_len, .off = img->sections_off};
	uint32_t n = snap_get_u32(&rd);
	if (rd.err) {
		fail(err, errlen, "snapshot %s: state: truncated before the device sections", dir);
		return -1;
	}
	if (n != vm->nsnapshots) {
		fail(err, errlen, "snapshot %s: %u device sections, this machine has %u (a snapshot "
		     "of another zhv?)", dir, n, vm->nsnapshots);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct snap_section *s = &vm->snapshots[i];
		char name[256];
		uint8_t nlen = snap_get_u8(&rd);
		snap_get(&rd, name, nlen);
		name[nlen] = '\0';
		uint32_t ver = snap_get_u32(&rd), len = snap_get_u32(&rd);
		if (rd.err || len > rd.len - rd.off) {
			fail(err, errlen, "snapshot %s: state: device section %u truncated", dir, i + 1);
			return -1;
		}
		if (strcmp(name, s->name) || ver != s->version) {
			fail(err, errlen, "snapshot %s: device section %u is %s version %u, this machine "
			     "has %s version %u there", dir, i + 1, name, ver, s->name, s->version);
			return -1;
		}
		struct snap_reader sec = {.p = img->state + rd.off, .len = len};
		rd.off += len;
		int ret = s->load(s->opaque, &sec);
		if (ret == 0)
			ret = snap_reader_end(&sec);
		if (ret < 0) {
			fail(err, errlen, "snapshot %s: device %s: its saved state is refused", dir,
			     s->name);
			return -1;
		}
	}
	if (snap_reader_end(&rd) < 0) {
		fail(err, errlen, "snapshot %s: state: trailing bytes after the device sections", dir);
		return -1;
	}
	return 0;
}

void snapshot_close(struct snapshot_image *img)
{
	free(img->dir);
	free(img->text);
	free(img->state);
	free(img->vcpu_blobs);
	free(img->vcpu_lens);
	memset(img, 0, sizeof(*img));
}
