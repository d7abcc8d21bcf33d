/* fuzz_pm_report: pm_report_decode on arbitrary bytes. Besides "no crash, no
 * leak, no sanitizer report", every accepted input must survive
 * encode -> decode -> encode with identical bytes both times, and agree with
 * pm_peek_envelope (see fuzz_pm_snapshot.c). abort() on any broken promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pm/pm_msgs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_report *a = NULL, *b = NULL;
    pm_envelope env;
    gw_buf e1, e2;

    if (pm_report_decode(data, size, &a) != GW_OK) {
        if (a != NULL)
            abort();
        return 0;
    }
    if (pm_peek_envelope(data, size, &env) != GW_OK || env.kind != PM_KIND_REPORT ||
        env.gen != a->env.gen || env.epoch != a->env.epoch || env.sent_ms != a->env.sent_ms)
        abort();
    gw_buf_init(&e1, PM_MAX_MSG_BYTES);
    gw_buf_init(&e2, PM_MAX_MSG_BYTES);
    if (pm_report_encode(a, &e1) != GW_OK)
        abort();
    if (pm_report_decode(e1.data, e1.len, &b) != GW_OK)
        abort();
    if (pm_report_encode(b, &e2) != GW_OK)
        abort();
    if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
        abort();
    gw_buf_fini(&e1);
    gw_buf_fini(&e2);
    pm_report_free(a);
    pm_report_free(b);
    return 0;
}
