/* snapshot_dir.h: a snapshot of zhv run on disk (zhv ctl snapshot DIR,
 * zhv run --restore DIR): the directory's three files, written atomically,
 * and read back with every check a restore needs (README "Snapshots"). */
#ifndef ZHV_VMM_SNAPSHOT_DIR_H
#define ZHV_VMM_SNAPSHOT_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "vcpu_thread.h"

#define SNAPSHOT_FORMAT_VERSION 1u
#define SNAPSHOT_MAX_DISKS 64

/* What the manifest says of the machine: enough to build the same board. */
struct snapshot_machine {
	unsigned ncpus;
	uint64_t mem_size;
	bool debug_exit, pc_testdev, pci_testdev;
	bool virtio_console; /* --console virtio */
	size_t ndisks;
	struct board_disk disks[SNAPSHOT_MAX_DISKS]; /* paths point into (text) */
	size_t nnets;       /* TAP devices: a machine with any cannot be saved */
};

/* A snapshot read from disk (snapshot_open), before it is applied. */
struct snapshot_image {
	char *dir;
	char *text;                  /* the manifest, lines split in place */
	struct snapshot_machine m;
	uint64_t mem_bytes, mem_hash;
	uint8_t *state;              /* the whole state file */
	size_t state_len;
	zhv_guest_clock_t clock;
	const uint8_t **vcpu_blobs;  /* into (state), m.ncpus of them */
	size_t *vcpu_lens;
	size_t sections_off;         /* where the device sections start in (state) */
};

/* snapshot_take: the whole machine into directory (dir) (absolute path):
 * pauses every vCPU (unless paused already), saves each vCPU, the guest's
 * clock and every device section, writes guest memory, then resumes unless
 * (stay_paused) or the machine was paused before. The files go into a new
 * directory beside (dir), are synced, and the directory then takes (dir)'s
 * place in one rename (an old snapshot there is replaced, then removed).
 * (m) describes the board (the manifest). Returns 0, or a negative value
 * with a reason in (err); (dir) is then left as it was. */
int snapshot_take(const char *dir, struct vm *vm, struct vcpus *v,
                  const struct snapshot_machine *m, bool stay_paused, char *err, size_t errlen);

/* snapshot_open: read and check (dir)'s manifest and state file (format
 * version, sizes, checksums, every vCPU blob). Returns 0, or -1 with a
 * reason in (err). Either way, free (img) with snapshot_close. */
int snapshot_open(const char *dir, struct snapshot_image *img, char *err, size_t errlen);

/* snapshot_apply: onto a board freshly built from img->m (no kernel): read
 * guest memory (its size and checksum checked) and load every device
 * section (their names and versions must be the board's, in order).
 * Returns 0, or -1 with a reason in (err). */
int snapshot_apply(struct snapshot_image *img, struct vm *vm, char *err, size_t errlen);

void snapshot_close(struct snapshot_image *img);

#endif
