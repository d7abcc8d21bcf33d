/* fuzz_pm_snapshot: pm_snapshot_decode on arbitrary bytes. Besides "no crash,
 * no leak, no sanitizer report", every accepted input must survive
 * encode -> decode -> encode with identical bytes both times, and agree with
 * pm_peek_envelope, and the traffic/mirror texts keep their limits: that is the codec's promise
 * that whatever a worker accepts, the controller could have sent. abort() on any broken promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pm/pm_msgs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_snapshot *a = NULL, *b = NULL;
    pm_envelope env;
    gw_buf e1, e2;

    if (pm_snapshot_decode(data, size, &a) != GW_OK) {
        if (a != NULL)
            abort();
        return 0;
    }
    if (pm_peek_envelope(data, size, &env) != GW_OK || env.kind != PM_KIND_SNAPSHOT ||
        env.gen != a->env.gen || env.epoch != a->env.epoch || env.sent_ms != a->env.sent_ms)
        abort();
    /* traffic: both halves or neither, within their caps; mirror likewise */
    if ((a->traffic.policy == NULL) != (a->traffic.config_json == NULL) ||
        (a->traffic.policy != NULL &&
         (a->traffic.policy[0] == '\0' || strlen(a->traffic.policy) > PM_MAX_STR ||
          strlen(a->traffic.config_json) > PM_MAX_ROUTE_JSON)) ||
        (a->mirror.config_json != NULL && strlen(a->mirror.config_json) > PM_MAX_MIRROR_JSON))
        abort();
    gw_buf_init(&e1, PM_MAX_MSG_BYTES);
    gw_buf_init(&e2, PM_MAX_MSG_BYTES);
    if (pm_snapshot_encode(a, &e1) != GW_OK)
        abort();
    if (pm_snapshot_decode(e1.data, e1.len, &b) != GW_OK)
        abort();
    if (pm_snapshot_encode(b, &e2) != GW_OK)
        abort();
    if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
        abort();
    if (a->n_models > 0 && pm_snapshot_find_model(b, a->models[0].name) != &b->models[0])
        abort();
    gw_buf_fini(&e1);
    gw_buf_fini(&e2);
    pm_snapshot_free(a);
    pm_snapshot_free(b);
    return 0;
}
