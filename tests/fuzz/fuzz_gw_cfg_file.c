/* fuzz_gw_cfg_file: feeds arbitrary bytes to gw_cfg_apply_yaml as the
 * content of an options file, over a table with one row of every type
 * (including a secret and an options-file row). It must never crash, leak or
 * read out of bounds, whatever libyaml makes of the input; errors are fine.
 * Each input starts from a zero-filled struct, which the API allows. */
#include <stdint.h>
#include <stdlib.h>

#include "gw/gw_cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_cfg {
    char *file;
    char *host;
    char *password;
    bool on;
    int64_t n;
    uint16_t port;
    uint64_t timeout_ms;
    double ratio;
} fz_cfg;

static const gw_cfg_opt fz_opts[] = {
    GW_CFG_STR("options-file", NULL, fz_cfg, file, NULL, "file"),
    GW_CFG_STR("host", NULL, fz_cfg, host, "localhost", "host"),
    GW_CFG_SECRET("password", NULL, fz_cfg, password, "password"),
    GW_CFG_BOOL("on", NULL, fz_cfg, on, false, "on"),
    GW_CFG_INT("n", NULL, fz_cfg, n, 1, -1000000, 1000000, "n"),
    GW_CFG_U16("port", NULL, fz_cfg, port, 80, 1, 65535, "port"),
    GW_CFG_MS("timeout", NULL, fz_cfg, timeout_ms, 1000, 0, 86400000, "timeout"),
    GW_CFG_DBL("ratio", NULL, fz_cfg, ratio, 0.5, 0, 1, "ratio"),
    GW_CFG_END,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_cfg cfg = {0};
    char *why = NULL;
    gw_err rc;

    rc = gw_cfg_apply_yaml(fz_opts, &cfg, (const char *)data, size, "fuzz.yaml", &why);
    if ((rc == GW_OK) != (why == NULL))
        abort(); /* the contract: why is set exactly on error */
    free(why);
    gw_cfg_free(fz_opts, &cfg);
    return 0;
}
