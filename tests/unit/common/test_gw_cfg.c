/* Unit tests for gw_cfg: precedence, every type's syntax and range errors,
 * flag forms, the options file, built-ins and secret redaction. Output is
 * captured by pointing gw_cfg_prog.out/err at open_memstream buffers. */
#include "gw/gw_cfg.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ut_leak.h"

typedef struct t_cfg {
    char *host;
    char *password;
    bool verbose;
    int64_t workers;
    uint16_t port;
    uint64_t timeout_ms;
    double socket_timeout;
} t_cfg;

static const gw_cfg_opt t_opts[] = {
    GW_CFG_STR("host", "T_HOST", t_cfg, host, "localhost", "Redis host"),
    GW_CFG_SECRET("password", "T_PASSWORD", t_cfg, password, "Redis password"),
    GW_CFG_BOOL("verbose", "T_VERBOSE", t_cfg, verbose, false, "Log more"),
    GW_CFG_INT("workers", "T_WORKERS", t_cfg, workers, 4, 1, 64, "Worker processes"),
    GW_CFG_U16("port", "T_PORT", t_cfg, port, 8080, 1, 65535, "TCP port for client traffic"),
    GW_CFG_MS("timeout", "T_TIMEOUT", t_cfg, timeout_ms, 30000, 100, 3600000,
              "Whole-exchange limit"),
    GW_CFG_DBL("socket-timeout", "T_SOCKET_TIMEOUT", t_cfg, socket_timeout, 1.0, 0.001, 60.0,
               "Redis socket timeout in seconds"),
    GW_CFG_END,
};

static const char *const t_envs[] = {"T_HOST",  "T_PASSWORD", "T_VERBOSE",        "T_WORKERS",
                                     "T_PORT",  "T_TIMEOUT",  "T_SOCKET_TIMEOUT", "T_OPTS_FILE",
                                     "T_TOKEN", "T_PIN"};

/* A second table: required options, a non-string secret and an options-file row. */
typedef struct r_cfg {
    char *opts_file;
    char *token;
    int64_t pin;
    bool flag;
} r_cfg;

static const gw_cfg_opt r_opts[] = {
    GW_CFG_STR("options-file", "T_OPTS_FILE", r_cfg, opts_file, NULL, "Options file"),
    GW_CFG_STR_F("token", "T_TOKEN", r_cfg, token, NULL, GW_CFG_F_SECRET | GW_CFG_F_REQUIRED,
                 "API token"),
    GW_CFG_INT_F("pin", "T_PIN", r_cfg, pin, 1234, 0, 9999, GW_CFG_F_SECRET, "A secret number"),
    GW_CFG_BOOL_F("flag", NULL, r_cfg, flag, false, GW_CFG_F_REQUIRED, "Must be given"),
    GW_CFG_END,
};

static t_cfg cfg;
static r_cfg rcfg;
static char *out_text;
static char *err_text;
static char tmp_path[64];

static void
setup(void)
{
    for (size_t i = 0; i < sizeof(t_envs) / sizeof(t_envs[0]); i++)
        unsetenv(t_envs[i]);
    memset(&cfg, 0, sizeof(cfg));
    memset(&rcfg, 0, sizeof(rcfg));
    out_text = NULL;
    err_text = NULL;
    tmp_path[0] = '\0';
}

static void
teardown(void)
{
    gw_cfg_free(t_opts, &cfg);
    gw_cfg_free(r_opts, &rcfg);
    free(out_text);
    free(err_text);
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    ut_leak_check();
}

TestSuite(gw_cfg, .init = setup, .fini = teardown, .timeout = 10);

/* Runs gw_cfg_parse on {"prog", args..., NULL} with stdout/stderr captured
 * into out_text/err_text. Frees <c>'s strings first, so tests may parse
 * several times in a row. */
static gw_cfg_outcome
run(const gw_cfg_opt *table, void *c, gw_cfg_validate_fn validate, ...)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    size_t olen, elen;
    FILE *out, *err;
    gw_cfg_outcome oc;
    const char *a;
    va_list ap;

    va_start(ap, validate);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    gw_cfg_free(table, c); /* the struct must hold no strings (a previous RUN) */
    free(out_text);
    free(err_text);
    out = open_memstream(&out_text, &olen);
    err = open_memstream(&err_text, &elen);
    cr_assert(out != NULL && err != NULL);
    gw_cfg_prog prog = {.name = "prog",
                        .version = "1.2.3",
                        .summary = "a test program",
                        .validate = validate,
                        .out = out,
                        .err = err};
    oc = gw_cfg_parse(table, c, &prog, argc, argv);
    fclose(out);
    fclose(err);
    return oc;
}

/* RUN("--port", "1") parses t_opts into cfg; RUN_R uses r_opts and rcfg. */
#define RUN(...)   run(t_opts, &cfg, NULL, __VA_ARGS__, (const char *)NULL)
#define RUN0()     run(t_opts, &cfg, NULL, (const char *)NULL)
#define RUN_R(...) run(r_opts, &rcfg, NULL, __VA_ARGS__, (const char *)NULL)

/* Writes <text> to a fresh temp file (removed in teardown); returns its path. */
static const char *
write_file(const char *text)
{
    int fd;

    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/gwcfgXXXXXX");
    fd = mkstemp(tmp_path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return tmp_path;
}

#define ASSERT_ERR_HAS(needle)                                                                     \
    cr_assert(err_text != NULL && strstr(err_text, (needle)) != NULL,                              \
              "stderr lacks [%s]; got:\n%s", (needle), err_text ? err_text : "(null)")
#define ASSERT_OUT_HAS(needle)                                                                     \
    cr_assert(out_text != NULL && strstr(out_text, (needle)) != NULL,                              \
              "stdout lacks [%s]; got:\n%s", (needle), out_text ? out_text : "(null)")

/* ---- precedence ---------------------------------------------------------- */

Test(gw_cfg, defaults_apply_when_nothing_is_set)
{
    cr_assert_eq(RUN0(), GW_CFG_RUN);
    cr_assert_str_eq(cfg.host, "localhost");
    cr_assert_null(cfg.password);
    cr_assert_eq(cfg.verbose, false);
    cr_assert_eq(cfg.workers, 4);
    cr_assert_eq(cfg.port, 8080);
    cr_assert_eq(cfg.timeout_ms, 30000);
    cr_assert_eq(cfg.socket_timeout, 1.0);
    cr_assert_str_empty(err_text);
    cr_assert_str_empty(out_text);
}

Test(gw_cfg, flag_beats_env_beats_file_beats_default)
{
    const char *path = write_file("port: 1000\nworkers: 5\nhost: filehost\n");

    setenv("T_PORT", "2000", 1);
    setenv("T_WORKERS", "6", 1);
    cr_assert_eq(RUN("--options-file", path, "--port", "3000"), GW_CFG_RUN, "%s", err_text);
    cr_assert_eq(cfg.port, 3000);           /* flag > env > file */
    cr_assert_eq(cfg.workers, 6);           /* env > file */
    cr_assert_str_eq(cfg.host, "filehost"); /* file > default */
    cr_assert_eq(cfg.timeout_ms, 30000);    /* default */
}

Test(gw_cfg, print_config_names_the_source_of_each_value)
{
    const char *path = write_file("# comment\nworkers: 5\nhost: filehost\n");
    char want[512];

    setenv("T_PORT", "2000", 1);
    cr_assert_eq(RUN("--options-file", path, "--timeout=2s", "--print-config"), GW_CFG_EXIT_OK,
                 "%s", err_text);
    snprintf(want, sizeof(want),
             "host=filehost  # file %s:3\n"
             "password=  # default\n"
             "verbose=false  # default\n"
             "workers=5  # file %s:2\n"
             "port=2000  # env T_PORT\n"
             "timeout=2s  # flag\n"
             "socket-timeout=1  # default\n",
             path, path);
    cr_assert_str_eq(out_text, want);
}

Test(gw_cfg, last_flag_wins)
{
    cr_assert_eq(RUN("--port", "1", "--port=2"), GW_CFG_RUN);
    cr_assert_eq(cfg.port, 2);
}

Test(gw_cfg, empty_env_counts_as_unset)
{
    setenv("T_PORT", "", 1);
    setenv("T_HOST", "", 1);
    cr_assert_eq(RUN0(), GW_CFG_RUN, "%s", err_text);
    cr_assert_eq(cfg.port, 8080);
    cr_assert_str_eq(cfg.host, "localhost");
}

Test(gw_cfg, flag_may_set_an_empty_string)
{
    cr_assert_eq(RUN("--host="), GW_CFG_RUN);
    cr_assert_str_eq(cfg.host, "");
}

/* ---- flag syntax ---------------------------------------------------------- */

Test(gw_cfg, flag_value_may_be_separate_or_after_equals)
{
    cr_assert_eq(RUN("--host", "a.example", "--workers=7", "--socket-timeout", "0.25"), GW_CFG_RUN);
    cr_assert_str_eq(cfg.host, "a.example");
    cr_assert_eq(cfg.workers, 7);
    cr_assert_eq(cfg.socket_timeout, 0.25);
}

Test(gw_cfg, value_after_space_may_start_with_dashes)
{
    cr_assert_eq(RUN("--host", "--weird"), GW_CFG_RUN);
    cr_assert_str_eq(cfg.host, "--weird");
}

Test(gw_cfg, bare_bool_flag_sets_true)
{
    cr_assert_eq(RUN("--verbose"), GW_CFG_RUN);
    cr_assert_eq(cfg.verbose, true);
}

Test(gw_cfg, no_prefix_sets_bool_false)
{
    setenv("T_VERBOSE", "true", 1);
    cr_assert_eq(RUN("--no-verbose"), GW_CFG_RUN);
    cr_assert_eq(cfg.verbose, false);
}

Test(gw_cfg, bool_accepts_every_documented_spelling)
{
    static const char *const yes[] = {"--verbose=true", "--verbose=YES", "--verbose=on",
                                      "--verbose=1"};
    static const char *const no[] = {"--verbose=false", "--verbose=No", "--verbose=OFF",
                                     "--verbose=0"};

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(RUN(yes[i]), GW_CFG_RUN, "%s", yes[i]);
        cr_assert_eq(cfg.verbose, true, "%s", yes[i]);
        gw_cfg_free(t_opts, &cfg);
        cr_assert_eq(RUN(no[i]), GW_CFG_RUN, "%s", no[i]);
        cr_assert_eq(cfg.verbose, false, "%s", no[i]);
        gw_cfg_free(t_opts, &cfg);
    }
    setenv("T_VERBOSE", "on", 1);
    cr_assert_eq(RUN0(), GW_CFG_RUN);
    cr_assert_eq(cfg.verbose, true);
}

Test(gw_cfg, bare_bool_does_not_consume_the_next_argument)
{
    cr_assert_eq(RUN("--verbose", "false"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("unexpected argument #2");
}

Test(gw_cfg, bad_bool_is_an_error)
{
    cr_assert_eq(RUN("--verbose=maybe"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --verbose: \"maybe\" (flag) is not a boolean; accepted "
                   "true|false|yes|no|on|off|1|0\n");
}

Test(gw_cfg, no_prefix_with_a_value_is_an_error)
{
    cr_assert_eq(RUN("--no-verbose=true"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--no-verbose takes no value");
}

Test(gw_cfg, no_prefix_on_a_non_bool_is_unknown)
{
    cr_assert_eq(RUN("--no-port"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("unknown option \"--no-port\"");
}

Test(gw_cfg, unknown_flag_is_an_error_naming_it)
{
    cr_assert_eq(RUN("--nope"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: unknown option \"--nope\"\n");
    ASSERT_ERR_HAS("prog: configuration invalid (1 error)\n");
    cr_assert_null(cfg.host, "strings are freed on EXIT outcomes");
}

Test(gw_cfg, single_dash_option_is_unknown)
{
    cr_assert_eq(RUN("-p=5"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("unknown option \"-p\"");
    cr_assert_null(strstr(err_text, "5"));
}

Test(gw_cfg, unknown_flag_value_is_never_echoed)
{
    cr_assert_eq(RUN("--pasword=hunter2", "--passwrd", "hunter3"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("unknown option \"--pasword\"");
    ASSERT_ERR_HAS("unexpected argument #3");
    cr_assert_null(strstr(err_text, "hunter"), "%s", err_text);
}

Test(gw_cfg, positional_argument_is_an_error)
{
    cr_assert_eq(RUN("serve"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: unexpected argument #1 (positional arguments are not accepted)");
    cr_assert_eq(RUN("--", "x", "y"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("unexpected argument #2");
    ASSERT_ERR_HAS("unexpected argument #3");
}

Test(gw_cfg, missing_value_is_an_error)
{
    cr_assert_eq(RUN("--port"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --port requires a value\n");
    cr_assert_eq(RUN("--options-file"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --options-file requires a value\n");
}

Test(gw_cfg, every_error_is_reported_not_only_the_first)
{
    const char *path = write_file("workers: 0\n");

    setenv("T_TIMEOUT", "5x", 1);
    cr_assert_eq(RUN("--options-file", path, "--port=0", "--bogus", "--socket-timeout=nan"),
                 GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--workers: \"0\" (file ");
    ASSERT_ERR_HAS("--timeout: \"5x\" (env T_TIMEOUT) is not a duration");
    ASSERT_ERR_HAS("--port: \"0\" (flag) is out of range; accepted 1..65535");
    ASSERT_ERR_HAS("unknown option \"--bogus\"");
    ASSERT_ERR_HAS("--socket-timeout: \"nan\" (flag) is not a number");
    ASSERT_ERR_HAS("prog: configuration invalid (5 errors)\n");
}

/* ---- value types --------------------------------------------------------- */

Test(gw_cfg, int_out_of_range_names_option_source_and_range)
{
    setenv("T_WORKERS", "65", 1);
    cr_assert_eq(RUN0(), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --workers: \"65\" (env T_WORKERS) is out of range; accepted 1..64\n");
}

Test(gw_cfg, int_rejects_malformed_numbers)
{
    static const char *const bad[] = {"--workers=4x",   "--workers=",    "--workers= 4",
                                      "--workers=0x10", "--workers=1.0", "--workers=+"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(RUN(bad[i]), GW_CFG_EXIT_ERR, "%s", bad[i]);
        ASSERT_ERR_HAS("is not an integer; accepted 1..64");
    }
    cr_assert_eq(RUN("--workers=99999999999999999999"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range");
    cr_assert_eq(RUN("--workers=+12"), GW_CFG_RUN);
    cr_assert_eq(cfg.workers, 12);
}

Test(gw_cfg, u16_enforces_its_range)
{
    cr_assert_eq(RUN("--port=65535"), GW_CFG_RUN);
    cr_assert_eq(cfg.port, 65535);
    cr_assert_eq(RUN("--port=65536"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--port: \"65536\" (flag) is out of range; accepted 1..65535");
    cr_assert_eq(RUN("--port=-1"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range");
    cr_assert_eq(RUN("--port=http"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is not an integer");
}

Test(gw_cfg, duration_accepts_ms_s_m_h_and_fractions)
{
    static const struct {
        const char *arg;
        uint64_t ms;
    } ok[] = {
        {"--timeout=250", 250},    {"--timeout=250ms", 250},   {"--timeout=2s", 2000},
        {"--timeout=1.5s", 1500},  {"--timeout=5m", 300000},   {"--timeout=1h", 3600000},
        {"--timeout=0.5m", 30000}, {"--timeout=1.250s", 1250}, {"--timeout=100.0ms", 100},
        {"--timeout=0.1s", 100},
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert_eq(RUN(ok[i].arg), GW_CFG_RUN, "%s: %s", ok[i].arg, err_text);
        cr_assert_eq(cfg.timeout_ms, ok[i].ms, "%s", ok[i].arg);
        gw_cfg_free(t_opts, &cfg);
    }
}

Test(gw_cfg, duration_rejects_bad_units_and_fractions_of_a_millisecond)
{
    static const char *const syntax[] = {"--timeout=2 s", "--timeout=2S",  "--timeout=-1s",
                                         "--timeout=.5s", "--timeout=1e3", "--timeout=2d",
                                         "--timeout=s",   "--timeout=1.s", "--timeout="};

    for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
        cr_assert_eq(RUN(syntax[i]), GW_CFG_EXIT_ERR, "%s", syntax[i]);
        ASSERT_ERR_HAS("is not a duration (e.g. 250ms, 2s, 1.5s, 5m); accepted 100ms..1h");
    }
    cr_assert_eq(RUN("--timeout=1.0005s"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--timeout: \"1.0005s\" (flag) is not a whole number of milliseconds");
    cr_assert_eq(RUN("--timeout=99ms"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range; accepted 100ms..1h");
    cr_assert_eq(RUN("--timeout=61m"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range");
    cr_assert_eq(RUN("--timeout=99999999999999999999999h"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range");
}

Test(gw_cfg, double_parses_decimal_and_rejects_nan_inf_hex)
{
    cr_assert_eq(RUN("--socket-timeout=1e-3"), GW_CFG_RUN);
    cr_assert_eq(cfg.socket_timeout, 0.001);
    gw_cfg_free(t_opts, &cfg);
    static const char *const bad[] = {
        "--socket-timeout=nan", "--socket-timeout=inf",  "--socket-timeout=0x1p3",
        "--socket-timeout=",    "--socket-timeout=1.0s", "--socket-timeout=--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(RUN(bad[i]), GW_CFG_EXIT_ERR, "%s", bad[i]);
        ASSERT_ERR_HAS("is not a number; accepted 0.001..60");
    }
    cr_assert_eq(RUN("--socket-timeout=60.5"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--socket-timeout: \"60.5\" (flag) is out of range; accepted 0.001..60");
    cr_assert_eq(RUN("--socket-timeout=1e999"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("is out of range");
}

/* ---- the options file ----------------------------------------------------- */

Test(gw_cfg, options_file_sets_every_type)
{
    const char *path = write_file("---\n"
                                  "host: \"redis.local\"   # quoted\n"
                                  "password: 's3cret'\n"
                                  "verbose: yes\n"
                                  "workers: 8\n"
                                  "port: 6379\n"
                                  "timeout: 1.5s\n"
                                  "socket-timeout: 0.5\n");

    cr_assert_eq(RUN("--options-file="
                     "/dev/null",
                     "--options-file", path),
                 GW_CFG_RUN, "%s", err_text);
    cr_assert_str_eq(cfg.host, "redis.local");
    cr_assert_str_eq(cfg.password, "s3cret");
    cr_assert_eq(cfg.verbose, true);
    cr_assert_eq(cfg.workers, 8);
    cr_assert_eq(cfg.port, 6379);
    cr_assert_eq(cfg.timeout_ms, 1500);
    cr_assert_eq(cfg.socket_timeout, 0.5);
}

Test(gw_cfg, options_file_nested_mapping_is_an_error_naming_key_and_line)
{
    const char *path = write_file("port: 1\nhost:\n  name: x\nworkers: 2\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":2: \"host\": nested mapping not allowed; values must be scalars");
    ASSERT_ERR_HAS("(1 error)");
}

Test(gw_cfg, options_file_sequence_value_is_an_error)
{
    const char *path = write_file("port: 1\n\nhost: [a, b]\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":3: \"host\": nested sequence not allowed");
}

Test(gw_cfg, options_file_unknown_key_is_an_error_with_line)
{
    const char *path = write_file("port: 1\nprot: 2\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":2: unknown option \"prot\"");
}

Test(gw_cfg, options_file_duplicate_key_is_an_error)
{
    const char *path = write_file("port: 1\nport: 2\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":2: duplicate key port (first on line 1)");
}

Test(gw_cfg, options_file_bad_value_names_file_and_line)
{
    const char *path = write_file("\n\nport: 70000\n");
    char want[256];

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    snprintf(want, sizeof(want), "--port: \"70000\" (file %s:3) is out of range", path);
    ASSERT_ERR_HAS(want);
}

Test(gw_cfg, options_file_null_value_keeps_the_default)
{
    const char *path = write_file("port:\nhost: ~\nworkers: null\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_RUN, "%s", err_text);
    cr_assert_eq(cfg.port, 8080);
    cr_assert_str_eq(cfg.host, "localhost");
    cr_assert_eq(cfg.workers, 4);
}

Test(gw_cfg, options_file_quoted_empty_string_is_a_value)
{
    const char *path = write_file("host: \"\"\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_RUN, "%s", err_text);
    cr_assert_str_eq(cfg.host, "");
}

Test(gw_cfg, options_file_empty_or_comment_only_is_fine)
{
    const char *path = write_file("# nothing here\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_RUN, "%s", err_text);
    cr_assert_eq(cfg.port, 8080);
    cr_assert_eq(RUN("--options-file", "/dev/null"), GW_CFG_RUN, "%s", err_text);
}

Test(gw_cfg, options_file_root_must_be_a_mapping)
{
    const char *path = write_file("- port: 1\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":1: must be a mapping of option names to values, not a sequence");
    gw_cfg_free(t_opts, &cfg);
    path = write_file("just text\n");
    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":1: must be a mapping of option names to values");
}

Test(gw_cfg, options_file_syntax_error_reports_the_line)
{
    const char *path = write_file("port: 1\nhost: \"unterminated\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("YAML syntax error");
    ASSERT_ERR_HAS(":3:"); /* libyaml reports the end of input */
}

Test(gw_cfg, options_file_second_document_is_an_error)
{
    const char *path = write_file("port: 1\n---\nport: 2\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":2: only one YAML document is allowed");
}

Test(gw_cfg, options_file_aliases_are_rejected)
{
    const char *path = write_file("host: &h x\nport: *h\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("\"port\": aliases are not supported");
}

Test(gw_cfg, options_file_missing_is_an_error)
{
    cr_assert_eq(RUN("--options-file", "/nonexistent/gw.yaml"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: cannot open options file /nonexistent/gw.yaml: No such file");
}

Test(gw_cfg, options_file_cannot_name_itself)
{
    const char *path = write_file("options-file: /etc/other.yaml\n");

    cr_assert_eq(RUN("--options-file", path), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS(":1: options-file cannot be set inside an options file");
}

Test(gw_cfg, options_file_path_may_come_from_the_tables_env)
{
    const char *path = write_file("token: abc\nflag: true\n");

    setenv("T_OPTS_FILE", path, 1);
    cr_assert_eq(RUN_R("--pin=1"), GW_CFG_RUN, "%s", err_text);
    cr_assert_str_eq(rcfg.opts_file, path);
    cr_assert_str_eq(rcfg.token, "abc");
    cr_assert_eq(rcfg.flag, true);
    gw_cfg_free(r_opts, &rcfg);
    /* A flag beats the env for the path too. */
    cr_assert_eq(RUN_R("--options-file", "/nonexistent.yaml"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("cannot open options file /nonexistent.yaml");
}

Test(gw_cfg, apply_yaml_collects_every_error_in_why)
{
    static const char text[] = "port: 0\nbogus: 1\nhost: [x]\nworkers: 9\n";
    char *why = (char *)1;

    cr_assert_eq(RUN0(), GW_CFG_RUN);
    cr_assert_eq(gw_cfg_apply_yaml(t_opts, &cfg, text, strlen(text), "mem.yaml", &why), GW_EINVAL);
    cr_assert_not_null(why);
    cr_assert_str_eq(why, "--port: \"0\" (file mem.yaml:1) is out of range; accepted 1..65535\n"
                          "options file mem.yaml:2: unknown option \"bogus\"\n"
                          "options file mem.yaml:3: \"host\": nested sequence not allowed; "
                          "values must be scalars\n");
    cr_assert_eq(cfg.workers, 9, "valid keys are still applied");
    free(why);
}

Test(gw_cfg, apply_yaml_ok_leaves_why_null)
{
    static const char text[] = "host: h2\n";
    char *why = (char *)1;

    cr_assert_eq(RUN0(), GW_CFG_RUN);
    cr_assert_eq(gw_cfg_apply_yaml(t_opts, &cfg, text, strlen(text), "m", &why), GW_OK);
    cr_assert_null(why);
    cr_assert_str_eq(cfg.host, "h2");
}

Test(gw_cfg, apply_yaml_rejects_nul_bytes_in_values)
{
    static const char text[] = "host: \"a\\0b\"\n";
    char *why = NULL;

    cr_assert_eq(gw_cfg_apply_yaml(t_opts, &cfg, text, strlen(text), "m", &why), GW_EINVAL);
    cr_assert_not_null(strstr(why, "contains a NUL byte"), "%s", why);
    free(why);
}

/* ---- secrets ------------------------------------------------------------- */

Test(gw_cfg, print_config_redacts_secrets_that_are_set)
{
    cr_assert_eq(RUN("--password", "hunter2", "--print-config"), GW_CFG_EXIT_OK);
    ASSERT_OUT_HAS("password=<redacted>  # flag\n");
    cr_assert_null(strstr(out_text, "hunter2"));
    cr_assert_null(cfg.password, "freed on EXIT_OK");
}

Test(gw_cfg, print_config_shows_an_unset_secret_as_empty)
{
    cr_assert_eq(RUN("--print-config"), GW_CFG_EXIT_OK);
    ASSERT_OUT_HAS("password=  # default\n");
}

Test(gw_cfg, secret_values_never_appear_in_errors)
{
    const char *path = write_file("token: \"sekr\\0et\"\npin: 77777\n");

    setenv("T_PIN", "12x45", 1);
    cr_assert_eq(RUN_R("--options-file", path, "--pin=99999", "--flag"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--pin: invalid value (flag): is out of range; accepted 0..9999");
    ASSERT_ERR_HAS("--pin: invalid value (env T_PIN): is not an integer");
    ASSERT_ERR_HAS("--token: invalid value (file ");
    cr_assert_null(strstr(err_text, "99999"), "%s", err_text);
    cr_assert_null(strstr(err_text, "77777"), "%s", err_text);
    cr_assert_null(strstr(err_text, "12x45"), "%s", err_text);
    cr_assert_null(strstr(err_text, "sekr"), "%s", err_text);
}

Test(gw_cfg, non_string_secret_is_redacted_in_print_config)
{
    setenv("T_TOKEN", "t0k3n", 1);
    cr_assert_eq(RUN_R("--flag", "--print-config"), GW_CFG_EXIT_OK, "%s", err_text);
    ASSERT_OUT_HAS("token=<redacted>  # env T_TOKEN\n");
    ASSERT_OUT_HAS("pin=<redacted>  # default\n");
    cr_assert_null(strstr(out_text, "1234"));
    cr_assert_null(strstr(out_text, "t0k3n"));
}

/* ---- required, validate, built-ins ---------------------------------------- */

Test(gw_cfg, missing_required_options_are_errors)
{
    cr_assert_eq(RUN_R("--pin=1"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --token is required (set --token or env T_TOKEN)\n");
    ASSERT_ERR_HAS("prog: --flag is required\n");
    ASSERT_ERR_HAS("(2 errors)");
}

Test(gw_cfg, required_string_must_not_be_empty)
{
    cr_assert_eq(RUN_R("--token=", "--no-flag"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--token is required");
    ASSERT_ERR_HAS("(1 error)"); /* --no-flag counts as set */
}

static unsigned validate_calls;

static void
validate_workers_vs_port(const void *p, gw_cfg_errs *errs)
{
    const t_cfg *c = p;

    validate_calls++;
    if (c->workers > 8 && c->port < 1024)
        gw_cfg_errorf(errs, "--workers above 8 needs --port >= 1024 (got %u)", (unsigned)c->port);
}

Test(gw_cfg, validate_callback_errors_fail_the_parse)
{
    validate_calls = 0;
    cr_assert_eq(
        run(t_opts, &cfg, validate_workers_vs_port, "--workers=9", "--port=80", (const char *)NULL),
        GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("prog: --workers above 8 needs --port >= 1024 (got 80)\n");
    cr_assert_eq(validate_calls, 1);
    cr_assert_eq(run(t_opts, &cfg, validate_workers_vs_port, "--workers=9", (const char *)NULL),
                 GW_CFG_RUN);
    cr_assert_eq(validate_calls, 2);
}

Test(gw_cfg, validate_is_skipped_when_parsing_failed)
{
    validate_calls = 0;
    cr_assert_eq(run(t_opts, &cfg, validate_workers_vs_port, "--port=x", (const char *)NULL),
                 GW_CFG_EXIT_ERR);
    cr_assert_eq(validate_calls, 0);
}

Test(gw_cfg, check_config_prints_config_ok_and_exits_ok)
{
    cr_assert_eq(RUN("--check-config", "--port=81"), GW_CFG_EXIT_OK);
    cr_assert_str_eq(out_text, "config ok\n");
    cr_assert_str_empty(err_text);
    cr_assert_null(cfg.host);
}

Test(gw_cfg, check_config_with_errors_exits_err)
{
    cr_assert_eq(RUN("--check-config", "--port=0"), GW_CFG_EXIT_ERR);
    cr_assert_str_empty(out_text);
    ASSERT_ERR_HAS("--port: \"0\" (flag) is out of range");
}

Test(gw_cfg, check_config_runs_validate)
{
    cr_assert_eq(run(t_opts, &cfg, validate_workers_vs_port, "--check-config", "--workers=9",
                     "--port=80", (const char *)NULL),
                 GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("needs --port >= 1024");
    cr_assert_str_empty(out_text);
}

Test(gw_cfg, builtin_flags_take_no_value)
{
    cr_assert_eq(RUN("--check-config=yes"), GW_CFG_EXIT_ERR);
    ASSERT_ERR_HAS("--check-config takes no value");
}

Test(gw_cfg, help_lists_every_option_and_exits_ok)
{
    cr_assert_eq(RUN("--help"), GW_CFG_EXIT_OK);
    ASSERT_OUT_HAS("Usage: prog [options]\na test program\n");
    for (const gw_cfg_opt *o = t_opts; o->name != NULL; o++) {
        char flag[64];
        snprintf(flag, sizeof(flag), o->type == GW_CFG_TBOOL ? "--[no-]%s\n" : "--%s ", o->name);
        ASSERT_OUT_HAS(flag);
        ASSERT_OUT_HAS(o->env);
        ASSERT_OUT_HAS(o->help);
    }
    ASSERT_OUT_HAS("  --port INT\n        TCP port for client traffic\n"
                   "        env T_PORT; default 8080; range 1..65535\n");
    ASSERT_OUT_HAS("  --timeout DURATION\n");
    ASSERT_OUT_HAS("default 30s; range 100ms..1h");
    ASSERT_OUT_HAS("  --[no-]verbose\n");
    ASSERT_OUT_HAS("default \"localhost\"");
    ASSERT_OUT_HAS("env T_PASSWORD; secret\n");
    ASSERT_OUT_HAS("--options-file PATH");
    ASSERT_OUT_HAS("--print-config");
    ASSERT_OUT_HAS("--check-config");
    ASSERT_OUT_HAS("--version");
    cr_assert_str_empty(err_text);
}

Test(gw_cfg, help_wins_over_other_errors)
{
    cr_assert_eq(RUN("--bogus", "-h", "--port=0"), GW_CFG_EXIT_OK);
    ASSERT_OUT_HAS("Usage: prog");
    cr_assert_str_empty(err_text);
}

Test(gw_cfg, help_marks_required_options)
{
    cr_assert_eq(RUN_R("--help"), GW_CFG_EXIT_OK);
    ASSERT_OUT_HAS("env T_TOKEN; secret; required\n");
    cr_assert_null(strstr(out_text, "--options-file PATH"), "table row replaces the built-in");
    ASSERT_OUT_HAS("--options-file STRING");
}

Test(gw_cfg, version_prints_name_and_version)
{
    cr_assert_eq(RUN("--version"), GW_CFG_EXIT_OK);
    cr_assert_str_eq(out_text, "prog 1.2.3\n");
}

typedef struct bad_cfg {
    int64_t n;
    uint16_t p;
} bad_cfg;

Test(gw_cfg, malformed_table_is_exit_err)
{
    static const gw_cfg_opt bad_default[] = {
        GW_CFG_INT("n", NULL, bad_cfg, n, 100, 1, 10, "n"),
        GW_CFG_END,
    };
    static const gw_cfg_opt dup[] = {
        GW_CFG_INT("n", NULL, bad_cfg, n, 1, 1, 10, "n"),
        GW_CFG_U16("n", NULL, bad_cfg, p, 1, 1, 10, "p"),
        GW_CFG_END,
    };
    static const gw_cfg_opt reserved[] = {
        GW_CFG_INT("help", NULL, bad_cfg, n, 1, 1, 10, "n"),
        GW_CFG_END,
    };
    static const gw_cfg_opt u16_range[] = {
        GW_CFG_U16("p", NULL, bad_cfg, p, 1, 0, 70000, "p"),
        GW_CFG_END,
    };
    static const gw_cfg_opt upper[] = {
        GW_CFG_INT("Port", NULL, bad_cfg, n, 1, 1, 10, "n"),
        GW_CFG_END,
    };
    const gw_cfg_opt *tables[] = {bad_default, dup, reserved, u16_range, upper};
    bad_cfg b = {0};

    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        cr_assert_eq(run(tables[i], &b, NULL, (const char *)NULL), GW_CFG_EXIT_ERR, "table %zu", i);
        ASSERT_ERR_HAS("prog: internal error: malformed option table");
    }
}

Test(gw_cfg, find_returns_the_row_or_null)
{
    const gw_cfg_opt *o = gw_cfg_find(t_opts, "port");

    cr_assert_not_null(o);
    cr_assert_eq(o->type, GW_CFG_TU16);
    cr_assert_eq(o->def_i, 8080);
    cr_assert_null(gw_cfg_find(t_opts, "nope"));
}

Test(gw_cfg, free_is_idempotent)
{
    cr_assert_eq(RUN("--password=x"), GW_CFG_RUN);
    cr_assert_not_null(cfg.password);
    gw_cfg_free(t_opts, &cfg);
    cr_assert_null(cfg.host);
    cr_assert_null(cfg.password);
    gw_cfg_free(t_opts, &cfg);
}
