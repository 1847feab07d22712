/* group.h: named assertion groups for the device tests: a kernel prints
 * "group NAME: ok" after each group of checks passed, and the script
 * reports one TAP line per group it expects (tests/vmm/devices.sh). */
#ifndef ZHV_TEST_RT_GROUP_H
#define ZHV_TEST_RT_GROUP_H

#include "rt.h"

#define RT_GROUP_OK(name) rt_printf("group %s: ok\n", name)

/* RT_EXPECT(cond, fmt, ...): fail with the message (and the line) if
 * (cond) is false. */
#define RT_EXPECT(cond, ...)                                                      \
	do {                                                                          \
		if (!(cond)) {                                                            \
			rt_printf("%s:%d: %s\n", __FILE__, __LINE__, #cond);                \
			rt_fail(__VA_ARGS__);                                                 \
		}                                                                         \
	} while (0)

#endif /* ZHV_TEST_RT_GROUP_H */
