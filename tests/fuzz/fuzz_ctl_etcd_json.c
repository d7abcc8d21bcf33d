/* fuzz_ctl_etcd_json: etcd v3 JSON gateway answers (range, watch message,
 * lease fields). Accepted messages must hold NUL-terminated keys and
 * values of the stated length; refusals must carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_etcd_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(gw_err rc, ctl_etcd_msg *m, char *why)
{
    if (rc != GW_OK) {
        if (why == NULL)
            abort();
        free(why);
        return;
    }
    for (size_t i = 0; i < m->n_kvs; i++) {
        const ctl_etcd_kv *kv = &m->kvs[i];
        if (kv->key == NULL || kv->key[0] == '\0' || (kv->is_delete != (kv->value == NULL)))
            abort();
        if (kv->value != NULL && kv->value[kv->value_len] != '\0')
            abort();
    }
    ctl_etcd_msg_fini(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    ctl_etcd_msg m = {0};
    char *why = NULL, *s;
    int64_t v;

    gw_err rc;

    rc = ctl_etcd_parse_range(p, size, &m, &why);
    check(rc, &m, why);
    why = NULL;
    rc = ctl_etcd_parse_watch(p, size, &m, &why);
    check(rc, &m, why);
    if (ctl_etcd_get_int(p, size, "TTL", &v) == GW_OK && v == INT64_MIN)
        v = 0; /* any value is fine; the call must not crash */
    s = ctl_etcd_get_str(p, size, "token");
    free(s);
    return 0;
}
