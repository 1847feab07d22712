/* host_test.c: zhv_host_query and zhv_host_virt_string (what zhv --version
 * prints), checked against the host itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zhv.h"

static void test_null(void **state)
{
	assert_int_equal(zhv_host_query(NULL), ZHV_ERR_INVALID_ARGS);
}

static void test_vendor_is_cpuid_leaf0(void **state)
{
	zhv_host_info_t h;
	memset(&h, 0x5a, sizeof(h));
	assert_int_equal(zhv_host_query(&h), ZHV_OK);
	unsigned int a, b, c, d;
	__cpuid(0, a, b, c, d);
	char v[13];
	memcpy(v, &b, 4);
	memcpy(v + 4, &d, 4);
	memcpy(v + 8, &c, 4);
	v[12] = '\0';
	assert_string_equal(h.cpu_vendor, v);
	assert_int_equal(strlen(h.cpu_vendor), 12);
}

static bool dir_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* kvm_usable exactly when /dev/kvm opens read-write here; the reason
 * otherwise; the kind from /sys/module, kvm_pvm first. */
static void test_kvm_matches_dev_kvm(void **state)
{
	zhv_host_info_t h;
	assert_int_equal(zhv_host_query(&h), ZHV_OK);
	int ok = access("/dev/kvm", R_OK | W_OK);
	int err = errno;
	if (ok != 0) {
		assert_false(h.kvm_usable);
		assert_int_equal(h.kvm_api_version, -1);
		assert_int_equal(h.kvm_errno, err);
		return;
	}
	assert_true(h.kvm_usable);
	assert_int_equal(h.kvm_api_version, 12);
	assert_int_equal(h.kvm_errno, 0);
	zhv_host_virt_t want = dir_exists("/sys/module/kvm_pvm")   ? ZHV_HOST_VIRT_KVM_PVM
	                       : dir_exists("/sys/module/kvm_amd")   ? ZHV_HOST_VIRT_SVM
	                       : dir_exists("/sys/module/kvm_intel") ? ZHV_HOST_VIRT_VMX
	                                                             : ZHV_HOST_VIRT_UNKNOWN;
	assert_int_equal(h.virt, want);
}

static void test_virt_strings(void **state)
{
	assert_non_null(strstr(zhv_host_virt_string(ZHV_HOST_VIRT_VMX), "Intel VT-x"));
	assert_non_null(strstr(zhv_host_virt_string(ZHV_HOST_VIRT_SVM), "AMD-V"));
	assert_non_null(strstr(zhv_host_virt_string(ZHV_HOST_VIRT_KVM_PVM), "kvm_pvm"));
	assert_string_equal(zhv_host_virt_string(ZHV_HOST_VIRT_UNKNOWN), "unknown KVM module");
	assert_string_equal(zhv_host_virt_string((zhv_host_virt_t)77), "unknown KVM module");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_vendor_is_cpuid_leaf0),
		cmocka_unit_test(test_kvm_matches_dev_kvm),
		cmocka_unit_test(test_virt_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
