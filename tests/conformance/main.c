/* main.c: the conformance suite's entry point. Usage:
 *   conformance [NAME-SUBSTRING...]
 * runs every test, or those whose name contains one of the arguments, and
 * prints TAP. See tests/lib/harness.h for the environment variables. */
#include "suites.h"

static const struct zt_test *const suites[] = {
	zt_common_tests,
	zt_x86_tests,
	zt_beyond_tests,
	zt_api_tests,
	zt_aspace_tests,
	zt_state_tests,
	zt_contract_tests,
	zt_insn_tests,
	zt_snapshot_tests,
	zt_debug_tests,
	zt_bell_tests,
};

int main(int argc, char **argv)
{
	return zt_main(argc, argv, suites, sizeof(suites) / sizeof(suites[0]));
}
