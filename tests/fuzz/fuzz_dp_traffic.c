/* Fuzz target: the --route-config parser (operator bytes) under both
 * policies, and the matcher over what it accepted: a pick is always a valid
 * entry or -1, and the fallback chain ends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_traffic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const policies[] = {"weight", "prefix"};
    char *json = malloc(size + 1);
    char why[300];

    memcpy(json, data, size);
    json[size] = '\0';
    for (int p = 0; p < 2; p++) {
        gw_route_cfg t;
        if (gw_route_cfg_parse(policies[p], json, &t, why, sizeof(why)) != GW_OK)
            continue;
        for (uint32_t i = 0; i < t.n; i++) {
            const char *model = t.eps[i].prefix ? t.eps[i].prefix : "m";
            int32_t pick = dp_traffic_pick(&t, model, (uint32_t)size * 2654435761u + i);
            uint32_t cur = 0, steps = 0;
            if (pick < -1 || pick >= (int32_t)t.n)
                abort();
            while (dp_traffic_next_fallback(&t, pick, &cur) >= 0)
                if (++steps > t.n)
                    abort();
            if (t.eps[i].base_url != NULL) {
                char url[512];
                dp_traffic_url(&t.eps[i], "/v1/chat/completions", url, sizeof(url));
            }
        }
        gw_route_cfg_fini(&t);
    }
    free(json);
    return 0;
}
