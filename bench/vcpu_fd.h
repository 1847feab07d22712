/* vcpu_fd.h: find the KVM vCPU file descriptor libzhv opened, through
 * /proc/self/fd (no libzhv internals), for the diagnostic variants that run
 * KVM_RUN directly on libzhv's own VM and vCPU. */
#ifndef BENCH_VCPU_FD_H
#define BENCH_VCPU_FD_H

#include <dirent.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The lowest fd whose link is "anon_inode:kvm-vcpu:<n>", or -1. Call it
 * while libzhv's vCPU is the only KVM vCPU of the process. */
static inline int bench_find_vcpu_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int best = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char path[300], link[128];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strncmp(link, "anon_inode:kvm-vcpu:", 20) == 0) {
			int fd = atoi(e->d_name);
			if (best < 0 || fd < best)
				best = fd;
		}
	}
	closedir(d);
	return best;
}

/* KVM_GET_VCPU_MMAP_SIZE (the kvm_run page plus the PIO data page etc.). */
static inline size_t bench_vcpu_mmap_size(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int sz = fd >= 0 ? ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0) : -1;
	if (fd >= 0)
		close(fd);
	return sz > 0 ? (size_t)sz : 0;
}

#endif
