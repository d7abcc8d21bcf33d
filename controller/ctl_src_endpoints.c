/* ctl_src_endpoints: the static endpoint list source (see
 * ctl_src_endpoints.h). It has no runtime part: the list is parsed once at
 * start and handed to the store, and a bad entry refuses start, because a
 * controller silently serving a shorter list than the operator typed is
 * worse than one that does not start. */
#include "ctl_src_endpoints.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_set.h"
#include "ctl_util.h"
#include "gw/gw_mem.h"

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

gw_err
ctl_src_endpoints_parse(const char *list, const char *model, pm_snapshot **out, char **why)
{
    pm_snapshot *set;
    const char *p = list;
    unsigned idx = 0;

    if (model == NULL || model[0] == '\0' || strlen(model) > PM_MAX_STR) {
        *why = ctl_strf("--llm-backend-model must be 1..%u bytes", PM_MAX_STR);
        return GW_EINVAL;
    }
    if (list == NULL || strspn(list, " \t\r\n") == strlen(list)) {
        *why = gw_xstrdup("--llm-backend-endpoints is empty");
        return GW_EINVAL;
    }
    set = ctl_set_new();
    ctl_set_add_model(set)->name = gw_xstrdup(model);
    for (;;) {
        const char *end = strchr(p, ',');
        const char *b = p, *e = end != NULL ? end : p + strlen(p);
        char *host = NULL, *ewhy = NULL;
        uint16_t port = 0;

        idx++;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (b == e) {
            *why = ctl_strf("--llm-backend-endpoints: entry %u is empty", idx);
            goto fail;
        }
        if (ctl_parse_hostport(b, (size_t)(e - b), &host, &port, &ewhy) != GW_OK) {
            *why = ctl_strf("--llm-backend-endpoints: entry %u \"%.*s\": %s", idx,
                            (int)((e - b) > 256 ? 256 : (e - b)), b, ewhy);
            free(ewhy);
            goto fail;
        }
        if (port == 0)
            port = CTL_SRC_ENDPOINTS_DEFAULT_PORT;
        for (uint32_t i = 0; i < set->n_endpoints; i++) {
            if (set->endpoints[i].port == port && strcmp(set->endpoints[i].ip, host) == 0) {
                *why = ctl_strf("--llm-backend-endpoints: entry %u \"%.*s\" repeats entry %u", idx,
                                (int)((e - b) > 256 ? 256 : (e - b)), b, i + 1);
                free(host);
                goto fail;
            }
        }
        if (set->n_endpoints >= PM_MAX_ENDPOINTS) {
            *why = ctl_strf("--llm-backend-endpoints: more than %u entries", PM_MAX_ENDPOINTS);
            free(host);
            goto fail;
        }
        pm_endpoint *ep = ctl_set_add_endpoint(set);
        ep->model = gw_xstrdup(model);
        ep->pod = ctl_hostport_str(host, port);
        ep->ip = host;
        ep->port = port;
        ep->metric_port = port;
        ep->engine = gw_xstrdup("vllm");
        ep->ready = true;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = set;
    return GW_OK;
fail:
    pm_snapshot_free(set);
    return GW_EINVAL;
}

gw_err
ctl_src_endpoints_start(ctl_store *store, const char *list, const char *model, char **why)
{
    pm_snapshot *set = NULL;
    gw_err rc = ctl_src_endpoints_parse(list, model, &set, why);

    if (rc != GW_OK)
        return rc;
    ctl_store_replace(store, CTL_SRC_ENDPOINTS, set);
    return GW_OK;
}
