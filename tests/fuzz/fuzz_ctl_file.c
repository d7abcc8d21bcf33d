/* fuzz_ctl_file: the controller's --config YAML parser (ctl_src_file_parse:
 * libyaml events -> ctl_yaml tree -> schema walk -> config JSON), from
 * memory. Any input must either parse into a set whose fields satisfy the
 * wire encoder, or be refused with a message; never crash or leak. */
#include <stdint.h>
#include <stdlib.h>

#include "ctl_src_file.h"
#include "gw/gw_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_snapshot *set = NULL;
    char *why = NULL;

    if (ctl_src_file_parse((const char *)data, size, "fuzz.yaml", &set, &why) == GW_OK) {
        /* A source set carries no ids; give each a distinct one so the
         * encoder's uniqueness rule holds, then every other rule it checks
         * (lengths, counts, ports, non-empty strings) must already pass. */
        gw_buf b;
        for (uint32_t i = 0; i < set->n_endpoints; i++)
            set->endpoints[i].id = i + 1;
        gw_buf_init(&b, PM_MAX_MSG_BYTES);
        if (pm_snapshot_encode(set, &b) != GW_OK)
            abort();
        gw_buf_fini(&b);
        pm_snapshot_free(set);
    } else if (why == NULL) {
        abort(); /* a refusal always explains itself */
    }
    free(why);
    return 0;
}
