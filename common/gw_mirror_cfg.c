/* gw_mirror_cfg: the mirror file's parser (see gw_mirror_cfg.h). */
#include "gw/gw_mirror_cfg.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gw/gw_file.h"
#include "gw/gw_mem.h"

/* Go's encoding/json matches struct fields case-insensitively; "enable_log"
 * is accepted as well (llumnix.md §7.9). */
static bool
key_is(const char *key, const char *go_name, const char *snake)
{
    return strcasecmp(key, go_name) == 0 || (snake != NULL && strcasecmp(key, snake) == 0);
}

gw_err
gw_mirror_cfg_parse(const char *json, size_t len, gw_mirror_cfg *out, char *why, size_t n)
{
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    gw_err rc = GW_OK;

    memset(out, 0, sizeof(*out));
    why[0] = '\0';
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return gw_refuse(why, n, "not JSON (line %d column %d: %.100s)", jerr.line, jerr.column,
                         jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return gw_refuse(why, n, "must be a JSON object");
    }
    json_object_foreach(root, key, v)
    {
        if (key_is(key, "Enable", NULL)) {
            if (!json_is_boolean(v))
                rc = gw_refuse(why, n, "Enable: must be true or false");
            else
                out->enable = json_is_true(v);
        } else if (key_is(key, "Target", NULL)) {
            if (!json_is_string(v))
                rc = gw_refuse(why, n, "Target: must be a string");
            else if (json_string_length(v) > 2048)
                rc = gw_refuse(why, n, "Target: longer than 2048 bytes");
            else if (json_string_length(v) > 0) {
                free(out->target);
                out->target = gw_xstrdup(json_string_value(v));
            }
        } else if (key_is(key, "Ratio", NULL)) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100)
                rc = gw_refuse(why, n, "Ratio: must be a number from 0 to 100 (percent)");
            else
                out->ratio = json_number_value(v);
        } else if (key_is(key, "Timeout", NULL)) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400000)
                rc = gw_refuse(why, n, "Timeout: must be milliseconds from 0 to 86400000");
            else
                out->timeout_ms = json_number_value(v);
        } else if (key_is(key, "Authorization", NULL)) {
            if (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n") != NULL)
                rc = gw_refuse(why, n, "Authorization: must be a string without line breaks");
            else if (json_string_length(v) > 0) {
                free(out->authorization);
                out->authorization = gw_xstrdup(json_string_value(v));
            }
        } else if (key_is(key, "EnableLog", "enable_log")) {
            if (!json_is_boolean(v))
                rc = gw_refuse(why, n, "EnableLog: must be true or false");
            else
                out->enable_log = json_is_true(v);
        } else {
            rc = gw_refuse(why, n,
                           "%.64s: unknown key (Enable, Target, Ratio, Timeout, Authorization, "
                           "EnableLog)",
                           key);
        }
        if (rc != GW_OK)
            break;
    }
    json_decref(root);
    if (rc == GW_OK && out->target != NULL) {
        const char *host = strncmp(out->target, "http://", 7) == 0    ? out->target + 7
                           : strncmp(out->target, "https://", 8) == 0 ? out->target + 8
                                                                      : NULL;
        if (host == NULL || *host == '\0' || *host == '/' || strpbrk(out->target, " \t\r\n"))
            rc = gw_refuse(why, n, "Target: \"%.128s\" is not an http:// or https:// URL",
                           out->target);
        for (size_t l = strlen(out->target); l > 0 && out->target[l - 1] == '/'; l--)
            out->target[l - 1] = '\0';
    }
    if (rc == GW_OK && out->enable && out->target == NULL)
        rc = gw_refuse(why, n, "Target: required when Enable is true");
    if (rc != GW_OK)
        gw_mirror_cfg_fini(out);
    return rc;
}

void
gw_mirror_cfg_fini(gw_mirror_cfg *c)
{
    free(c->target);
    if (c->authorization != NULL)
        explicit_bzero(c->authorization, strlen(c->authorization));
    free(c->authorization);
    memset(c, 0, sizeof(*c));
}

gw_mirror_file
gw_mirror_file_read(const char *path, char **text)
{
    struct stat st;

    *text = NULL;
    /* stat first: an absent file is the normal "no mirror" and must cost
     * no error path every interval. */
    if (stat(path, &st) != 0 && errno == ENOENT)
        return GW_MIRROR_FILE_MISSING;
    if (gw_read_file_text(path, GW_MIRROR_FILE_MAX, text) != GW_OK)
        return GW_MIRROR_FILE_UNREADABLE;
    return GW_MIRROR_FILE_READ;
}
