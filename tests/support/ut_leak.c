/* ut_leak: see ut_leak.h. */
#include "ut_leak.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(GW_ASAN) && defined(__has_include)
#if __has_include(<sanitizer/lsan_interface.h>)
#include <sanitizer/lsan_interface.h>
#define UT_HAVE_LSAN 1
#endif
#endif

void
ut_leak_check(void)
{
#ifdef UT_HAVE_LSAN
    if (__lsan_do_recoverable_leak_check() != 0) {
        fprintf(stderr, "ut_leak_check: LeakSanitizer found leaks\n");
        abort();
    }
#endif
}
