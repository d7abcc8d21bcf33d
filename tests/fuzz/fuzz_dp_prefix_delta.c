/* Fuzz target: the prefix index's sync delta decoder (dp_prefix.h). Its
 * input is what other workers (or anybody with access to Redis) wrote to
 * the stream. Checks the contract: a blob either decodes whole or hands out
 * no record, every record lies inside the blob with a key holding '|' after
 * a non-empty model, and applying the records to an index is safe. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_prefix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz {
    const uint8_t *lo, *hi;
    uint32_t records;
    dp_prefix *p;
} fz;

static void
on_record(void *arg, const char *key, size_t klen, const uint8_t *le, uint32_t n)
{
    fz *f = arg;
    const char *bar = NULL;

    if ((const uint8_t *)key < f->lo || (const uint8_t *)key + klen > f->hi || le < f->lo ||
        le + 8 * (size_t)n > f->hi || n == 0 || n > DP_PREFIX_DELTA_MAX_HASHES)
        abort();
    for (size_t i = 0; i < klen; i++)
        if (key[i] == '|')
            bar = key + i;
    if (bar == NULL || bar == key)
        abort();
    f->records++;
    (void)dp_prefix_apply_remote(f->p, key, klen, le, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dp_prefix *p;
    dp_prefix_cfg c = {.block_size = 16, .seed = 0, .capacity = 1024, .max_blocks = 64};
    fz f = {.lo = data, .hi = data + size};
    gw_err rc;

    if (p == NULL)
        p = dp_prefix_new(&c); /* no namespaces: remote records are ignored, safely */
    f.p = p;
    rc = dp_prefix_delta_decode(data, size, on_record, &f);
    if (rc != GW_OK && f.records != 0)
        abort();
    if (rc == GW_OK && f.records == 0)
        abort();
    if (dp_prefix_delta_decode(data, size, NULL, NULL) != rc)
        abort();
    return 0;
}
