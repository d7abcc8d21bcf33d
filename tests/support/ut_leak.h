/* ut_leak: make LeakSanitizer reports fail Criterion tests (STYLE §9). A leak
 * inside a test is printed but the test still passes; calling ut_leak_check()
 * from every suite's .fini aborts in ASan builds when leaks are found, which
 * makes the runner exit non-zero. A no-op in other builds. */
#ifndef UT_LEAK_H
#define UT_LEAK_H

void ut_leak_check(void);

#endif
