/* gw_cfg: the typed process-option table (redis static_configs[], nginx
 * ngx_command_t). Each binary declares one static table describing every
 * option it accepts: the --flag name, an optional environment variable, the
 * type, the default, the accepted range, the offsetof() target in the
 * binary's config struct, flags and a help string. gw_cfg_parse() fills the
 * struct from, in increasing precedence:
 *
 *   default (the table) < options file < environment < command-line flag
 *
 * and handles the built-in flags --help, --version, --print-config,
 * --check-config and --options-file PATH. Defaults live only in the table
 * (STYLE §7).
 *
 * Config struct conventions (the field's C type is checked at compile time by
 * the GW_CFG_* macros):
 *   GW_CFG_STR / GW_CFG_SECRET  char *    heap string owned by the struct, NULL
 *                                         when unset and the default is NULL
 *   GW_CFG_BOOL                 bool
 *   GW_CFG_INT                  int64_t   decimal, optional sign
 *   GW_CFG_U16                  uint16_t  decimal, range within 0..65535
 *   GW_CFG_MS                   uint64_t  milliseconds; "250", "250ms", "2s",
 *                                         "1.5s", "5m", "1h" (must be whole ms)
 *   GW_CFG_DBL                  double    e.g. "1.0", "0.25", "1e-3"; finite
 * A list is a string option that the binary splits on commas.
 *
 * Value syntax, common to every source:
 *   bool  true/false, yes/no, on/off, 1/0 (case-insensitive)
 *   flags --name value, --name=value; bools also bare --name (true),
 *         --no-name (false) and --name=false. A bare bool never consumes the
 *         next argument. Repeating a flag: the last one wins.
 *   env   the table's env name; an empty variable counts as unset, so chart
 *         templates can render `value: ""` to mean "use the default".
 *   file  --options-file PATH: a YAML document holding one flat mapping of
 *         option names to scalar values (`listen-port: 8080`). Nested
 *         mappings, sequences, aliases, duplicate keys and unknown keys are
 *         errors naming the key and line. A null value (`key:`, `~`) leaves
 *         the option at its default. If the table has a string option named
 *         "options-file", its env variable may also name the file, and the
 *         effective path is stored in its field.
 *
 * Errors: every problem is collected (not only the first) and printed, one
 * line each, as "<prog>: <message>" on the error stream, followed by a count.
 * A message names the option, the source of the bad value ("flag", "env
 * GW_X", "file path:line") and the accepted range. Values of GW_CFG_F_SECRET
 * options are never printed, in errors or anywhere else.
 *
 * Cross-field validation: the binary passes a validate callback in
 * gw_cfg_prog; it runs after a clean parse (also under --check-config and
 * --print-config) and reports through gw_cfg_errorf(). So main() is:
 *
 *     static void dp_cfg_validate(const void *p, gw_cfg_errs *errs)
 *     {
 *         const dp_cfg *cfg = p;
 *         if (cfg->idle_timeout_ms > cfg->upstream_timeout_ms)
 *             gw_cfg_errorf(errs, "--idle-timeout must not exceed --upstream-timeout");
 *     }
 *     ...
 *     dp_cfg cfg = {0};
 *     gw_cfg_prog prog = { .name = "llmgw-worker", .version = GW_VERSION,
 *                          .summary = "llmgw data plane", .validate = dp_cfg_validate };
 *     switch (gw_cfg_parse(dp_opts, &cfg, &prog, argc, argv)) {
 *     case GW_CFG_RUN: break;
 *     case GW_CFG_EXIT_OK: return 0;
 *     case GW_CFG_EXIT_ERR: return 1;
 *     }
 *     ... run ...
 *     gw_cfg_free(dp_opts, &cfg);
 *
 * Threads: call from main before any thread starts; the filled struct is
 * read-only afterwards (STYLE §7). Uses getenv(), stdout/stderr (or the
 * streams in gw_cfg_prog) and libyaml. */
#ifndef GW_CFG_H
#define GW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gw/gw_err.h"

typedef enum gw_cfg_type {
    GW_CFG_TSTR = 1, /* char * (heap, owned by the struct) */
    GW_CFG_TBOOL,    /* bool */
    GW_CFG_TINT,     /* int64_t, [min_i, max_i] */
    GW_CFG_TU16,     /* uint16_t, [min_i, max_i] within 0..65535 */
    GW_CFG_TMS,      /* uint64_t milliseconds, [min_i, max_i] */
    GW_CFG_TDBL,     /* double, [min_d, max_d] */
} gw_cfg_type;

/* Option flags. */
#define GW_CFG_F_SECRET   0x1u /* value never printed: <redacted> in --print-config */
#define GW_CFG_F_REQUIRED 0x2u /* must be set by file, env or flag (strings: non-empty) */

/* One row of an option table. Fill rows with the GW_CFG_* macros below and end
 * the table with GW_CFG_END; the fields are the macros' business. */
typedef struct gw_cfg_opt {
    const char *name; /* --flag and options-file key: [a-z0-9-]+; NULL ends the table */
    const char *env;  /* environment variable or NULL */
    gw_cfg_type type;
    unsigned flags;    /* GW_CFG_F_* */
    size_t off;        /* offsetof() the field in the binary's config struct */
    const char *def_s; /* TSTR default (copied), may be NULL */
    int64_t def_i;     /* TBOOL (0/1), TINT, TU16, TMS default */
    int64_t min_i, max_i;
    double def_d, min_d, max_d; /* TDBL */
    const char *help;
} gw_cfg_opt;

/* offsetof(<st>, <field>), plus a compile-time check that the field has type
 * <ctype>: comparing distinct pointer types is a constraint violation, so a
 * mismatch is a warning (an error with -Werror). sizeof keeps it unevaluated. */
#define GW_CFG_OFF_(st, field, ctype)                                                              \
    (offsetof(st, field) + 0 * sizeof(&((st *)0)->field == (ctype *)0))

#define GW_CFG_STR_F(name_, env_, st, field, def, flags_, help_)                                   \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TSTR, .flags = (flags_),                    \
        .off = GW_CFG_OFF_(st, field, char *), .def_s = (def), .help = (help_)                     \
    }
#define GW_CFG_BOOL_F(name_, env_, st, field, def, flags_, help_)                                  \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TBOOL, .flags = (flags_),                   \
        .off = GW_CFG_OFF_(st, field, bool), .def_i = (def) ? 1 : 0, .min_i = 0, .max_i = 1,       \
        .help = (help_)                                                                            \
    }
#define GW_CFG_INT_F(name_, env_, st, field, def, min, max, flags_, help_)                         \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TINT, .flags = (flags_),                    \
        .off = GW_CFG_OFF_(st, field, int64_t), .def_i = (def), .min_i = (min), .max_i = (max),    \
        .help = (help_)                                                                            \
    }
#define GW_CFG_U16_F(name_, env_, st, field, def, min, max, flags_, help_)                         \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TU16, .flags = (flags_),                    \
        .off = GW_CFG_OFF_(st, field, uint16_t), .def_i = (def), .min_i = (min), .max_i = (max),   \
        .help = (help_)                                                                            \
    }
#define GW_CFG_MS_F(name_, env_, st, field, def, min, max, flags_, help_)                          \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TMS, .flags = (flags_),                     \
        .off = GW_CFG_OFF_(st, field, uint64_t), .def_i = (def), .min_i = (min), .max_i = (max),   \
        .help = (help_)                                                                            \
    }
#define GW_CFG_DBL_F(name_, env_, st, field, def, min, max, flags_, help_)                         \
    {                                                                                              \
        .name = (name_), .env = (env_), .type = GW_CFG_TDBL, .flags = (flags_),                    \
        .off = GW_CFG_OFF_(st, field, double), .def_d = (def), .min_d = (min), .max_d = (max),     \
        .help = (help_)                                                                            \
    }

/* The usual forms: (name, env or NULL, struct type, field, default, [min, max,] help). */
#define GW_CFG_STR(name, env, st, field, def, help) GW_CFG_STR_F(name, env, st, field, def, 0, help)
/* A secret string (password, token): no default, never printed. */
#define GW_CFG_SECRET(name, env, st, field, help)                                                  \
    GW_CFG_STR_F(name, env, st, field, NULL, GW_CFG_F_SECRET, help)
#define GW_CFG_BOOL(name, env, st, field, def, help)                                               \
    GW_CFG_BOOL_F(name, env, st, field, def, 0, help)
#define GW_CFG_INT(name, env, st, field, def, min, max, help)                                      \
    GW_CFG_INT_F(name, env, st, field, def, min, max, 0, help)
#define GW_CFG_U16(name, env, st, field, def, min, max, help)                                      \
    GW_CFG_U16_F(name, env, st, field, def, min, max, 0, help)
#define GW_CFG_MS(name, env, st, field, def, min, max, help)                                       \
    GW_CFG_MS_F(name, env, st, field, def, min, max, 0, help)
#define GW_CFG_DBL(name, env, st, field, def, min, max, help)                                      \
    GW_CFG_DBL_F(name, env, st, field, def, min, max, 0, help)
#define GW_CFG_END                                                                                 \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* Collector for error messages (opaque; only valid inside a validate callback). */
typedef struct gw_cfg_errs gw_cfg_errs;

/* Adds one error line. <fmt> must not include secret values. */
void gw_cfg_errorf(gw_cfg_errs *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Cross-field validation, run after every option parsed cleanly. <cfg> is the
 * binary's config struct (filled); report problems with gw_cfg_errorf. */
typedef void (*gw_cfg_validate_fn)(const void *cfg, gw_cfg_errs *errs);

/* What the binary is (all strings borrowed for the duration of the call). */
typedef struct gw_cfg_prog {
    const char *name;            /* program name for usage and error lines */
    const char *version;         /* printed by --version; may be NULL ("unknown") */
    const char *summary;         /* one line under the usage line; may be NULL */
    gw_cfg_validate_fn validate; /* may be NULL */
    FILE *out;                   /* --help/--version/--print-config/"config ok"; NULL: stdout */
    FILE *err;                   /* error lines; NULL: stderr */
} gw_cfg_prog;

typedef enum gw_cfg_outcome {
    GW_CFG_RUN,      /* config parsed and validated: start the process */
    GW_CFG_EXIT_OK,  /* --help, --version, --print-config or a clean --check-config: exit 0 */
    GW_CFG_EXIT_ERR, /* errors were printed: exit 1 */
} gw_cfg_outcome;

/* Fills <cfg> from the table's defaults, the options file, the environment and
 * argv[1..argc-1] (precedence in that order), then checks required options and
 * runs prog->validate.
 *
 * <cfg> must be zero-filled (or already passed to gw_cfg_free): every field in
 * <table> is overwritten, and string fields are not freed first.
 *
 * Built-ins: --help / -h prints usage generated from the table (flag, env,
 * default, range, help) and --version prints "<name> <version>"; both return
 * GW_CFG_EXIT_OK at once, whatever else is on the command line.
 * --print-config prints every effective option as `name=value  # source`
 * (secrets as <redacted> when set) and --check-config prints "config ok";
 * both return GW_CFG_EXIT_OK when the config is valid, otherwise the errors
 * are printed and the result is GW_CFG_EXIT_ERR. Unknown flags, positional
 * arguments, missing values, unparsable or out-of-range values, options-file
 * problems, missing required options and validate errors all give
 * GW_CFG_EXIT_ERR with every error printed.
 *
 * Ownership: on GW_CFG_RUN the string fields belong to <cfg> until
 * gw_cfg_free(). On either EXIT outcome the strings were already freed (the
 * fields are NULL), so main() may simply return; gw_cfg_free is still safe.
 * A malformed table (bad name, duplicate, default outside its range) is a
 * programming error: an alert is logged and GW_CFG_EXIT_ERR returned. */
GW_MUST_CHECK gw_cfg_outcome gw_cfg_parse(const gw_cfg_opt *table, void *cfg,
                                          const gw_cfg_prog *prog, int argc, char **argv);

/* Frees the string fields of <cfg> named by <table> and NULLs them.
 * Idempotent; other fields are left alone. */
void gw_cfg_free(const gw_cfg_opt *table, void *cfg);

/* Applies an options file held in memory (<text>, <len> bytes, need not be
 * NUL-terminated) to <cfg>, which must already hold values (defaults or a
 * previous parse) or be zero-filled: string fields it sets are freed first.
 * <path> is used only in messages. This is the file layer of gw_cfg_parse,
 * exposed for tests, the fuzzer and tools.
 * GW_OK: every key applied. GW_EINVAL: at least one error; *why (if <why> is
 * not NULL) receives a heap string of newline-separated messages that the
 * caller frees; valid keys are still applied. *why is NULL on GW_OK. */
GW_MUST_CHECK gw_err gw_cfg_apply_yaml(const gw_cfg_opt *table, void *cfg, const char *text,
                                       size_t len, const char *path, char **why);

/* Looks up the row named <name>; NULL if absent. */
const gw_cfg_opt *gw_cfg_find(const gw_cfg_opt *table, const char *name);

#endif
