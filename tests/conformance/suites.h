/* suites.h: the test tables of the conformance suite (one per file). */
#ifndef ZT_SUITES_H
#define ZT_SUITES_H

#include "../lib/harness.h"

extern const struct zt_test zt_common_tests[]; /* common_test.c: spec 6.2 */
extern const struct zt_test zt_x86_tests[];    /* x86_test.c: spec 6.3 */
extern const struct zt_test zt_beyond_tests[]; /* beyond_test.c: ours */
extern const struct zt_test zt_api_tests[];    /* api_test.c: argument checks */
extern const struct zt_test zt_aspace_tests[]; /* aspace_test.c: spec 6.4 */
extern const struct zt_test zt_state_tests[];  /* state_test.c: mid-exit reads, id reuse */
extern const struct zt_test zt_contract_tests[]; /* contract_test.c: issue 6 */
extern const struct zt_test zt_insn_tests[];   /* insn_test.c: libzhv's fallback emulator */
extern const struct zt_test zt_snapshot_tests[]; /* snapshot_test.c: issue 9 */
extern const struct zt_test zt_debug_tests[];  /* debug_test.c: issue 12 */
extern const struct zt_test zt_bell_tests[];   /* bell_test.c: BELL doorbells, issue 11 */

#endif /* ZT_SUITES_H */
