/* host.c: what the host offers (zhv_host_query): CPU vendor, /dev/kvm,
 * KVM's API version and which KVM module provides it. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zhv.h"

static bool module_loaded(const char *name)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

zhv_status_t zhv_host_query(zhv_host_info_t *info)
{
	if (!info)
		return ZHV_ERR_INVALID_ARGS;
	memset(info, 0, sizeof(*info));
	info->kvm_api_version = -1;

	unsigned int max, b, c, d;
	__cpuid(0, max, b, c, d);
	memcpy(info->cpu_vendor, &b, 4);
	memcpy(info->cpu_vendor + 4, &d, 4);
	memcpy(info->cpu_vendor + 8, &c, 4);
	info->cpu_vendor[12] = '\0';

	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		info->kvm_errno = errno;
		return ZHV_OK;
	}
	int v;
	do
		v = ioctl(fd, KVM_GET_API_VERSION, 0);
	while (v < 0 && errno == EINTR);
	close(fd);
	info->kvm_api_version = v;
	info->kvm_usable = v == KVM_API_VERSION;

	/* kvm_pvm first: it may be loaded beside kvm_amd or kvm_intel, and it
	 * is then what /dev/kvm is. */
	if (module_loaded("kvm_pvm"))
		info->virt = ZHV_HOST_VIRT_KVM_PVM;
	else if (module_loaded("kvm_amd"))
		info->virt = ZHV_HOST_VIRT_SVM;
	else if (module_loaded("kvm_intel"))
		info->virt = ZHV_HOST_VIRT_VMX;
	else
		info->virt = ZHV_HOST_VIRT_UNKNOWN;
	return ZHV_OK;
}

const char *zhv_host_virt_string(zhv_host_virt_t virt)
{
	switch (virt) {
	case ZHV_HOST_VIRT_VMX:
		return "hardware virtualization (Intel VT-x, kvm_intel)";
	case ZHV_HOST_VIRT_SVM:
		return "hardware virtualization (AMD-V, kvm_amd)";
	case ZHV_HOST_VIRT_KVM_PVM:
		return "kvm_pvm (shadow paging; guest kernel code emulated)";
	case ZHV_HOST_VIRT_UNKNOWN:
		break;
	}
	return "unknown KVM module";
}
