/* ut_cfg: option-table test runner (see ut_cfg.h). */
#include "ut_cfg.h"

#include <stdio.h>
#include <string.h>

gw_cfg_outcome
ut_cfg_run(const gw_cfg_opt *table, void *cfg, size_t cfg_size, gw_cfg_prog prog, char **text,
           const char *const *args)
{
    char *argv[32];
    int argc = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    gw_cfg_outcome o;

    argv[argc++] = (char *)prog.name;
    for (size_t i = 0; args[i] != NULL && argc < 31; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    prog.out = mem;
    prog.err = mem;
    memset(cfg, 0, cfg_size);
    o = gw_cfg_parse(table, cfg, &prog, argc, argv);
    fclose(mem);
    *text = buf;
    return o;
}
