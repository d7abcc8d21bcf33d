/* ut_cfg: runs gw_cfg_parse on an argument list for option-table tests and
 * captures what it prints, so each binary's table test needs no harness of
 * its own. */
#ifndef UT_CFG_H
#define UT_CFG_H

#include <stddef.h>

#include "gw/gw_cfg.h"

/* Zeroes <cfg_size> bytes at <cfg>, parses argv = {<prog>.name, <args>...}
 * (<args> NULL-terminated, at most 30) with <table> and <prog> (its out/err
 * are replaced), and returns the outcome; *text is everything printed
 * (heap, caller frees). */
gw_cfg_outcome ut_cfg_run(const gw_cfg_opt *table, void *cfg, size_t cfg_size, gw_cfg_prog prog,
                          char **text, const char *const *args);

#endif
