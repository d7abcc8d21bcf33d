/* fuzz_ctl_kobj: the Kubernetes pod parser (ctl_kpod_parse) and the pod ->
 * endpoint step, from JSON bytes as the API server would send them. An
 * accepted pod that is an endpoint must make a snapshot the wire encoder
 * accepts (so no pod can break publishing); a refusal must carry a message
 * and leave the output untouched. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kobj.h"
#include "ctl_set.h"
#include "gw/gw_buf.h"
#include "gw/gw_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *pod = json_loadb((const char *)data, size, 0, &jerr);
    ctl_kpod p = {0};
    char *why = NULL;

    if (pod == NULL)
        return 0;
    if (ctl_kpod_parse(pod, &p, &why) != GW_OK) {
        if (why == NULL || p.name != NULL)
            abort();
        free(why);
        json_decref(pod);
        return 0;
    }
    if (ctl_kpod_is_endpoint(&p)) {
        pm_snapshot *s = ctl_set_new();
        pm_model *m = ctl_set_add_model(s);
        gw_buf b;

        m->name = gw_xstrdup(p.model);
        ctl_kpod_endpoint(&p, ctl_set_add_endpoint(s));
        s->endpoints[0].id = 1;
        gw_buf_init(&b, PM_MAX_MSG_BYTES);
        if (strlen(p.model) <= PM_MAX_STR && pm_snapshot_encode(s, &b) != GW_OK)
            abort();
        gw_buf_fini(&b);
        pm_snapshot_free(s);
    }
    ctl_kpod_fini(&p);
    json_decref(pod);
    return 0;
}
