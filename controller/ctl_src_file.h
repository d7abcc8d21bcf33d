/* ctl_src_file: the `file` discovery source (DESIGN §3): one YAML file
 * listing the gateway settings, the models with their model.aibrix.ai/config
 * and their endpoints (schema in controller/README.md and
 * examples/local.yaml). The file is polled (stat: device, inode, size, mtime,
 * ctime) every poll interval and re-read when any of them changes; stat
 * follows symlinks, so a Kubernetes ConfigMap's atomic ..data symlink swap is
 * seen as a new inode.
 *
 * Validation is all-or-nothing per file: a file with any problem (YAML
 * syntax, schema, a bad config JSON in any model) is refused whole, each
 * problem is logged as "path:line:col: field.path: message", the
 * llmgw_controller_config_errors_total{source="file"} counter goes up, and
 * the last good version stays in force. An empty file, a deleted file or an
 * unreadable file is treated the same way (kept last good; an empty fleet is
 * written `models: []`).
 *
 * Loop thread only. The file is read with plain read(2): it is a small local
 * file, capped at CTL_SRC_FILE_MAX_BYTES. */
#ifndef CTL_SRC_FILE_H
#define CTL_SRC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "ctl_metrics.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"
#include "pm/pm_msgs.h"

#define CTL_SRC_FILE_MAX_BYTES (16u << 20)

typedef struct ctl_src_file ctl_src_file;

/* Parses the YAML config in <text>/<len> (need not be NUL-terminated) into a
 * source set (a pm_snapshot without envelope or endpoint ids; see
 * ctl_store.h). <path> is used only in messages. On GW_OK *out is a new set
 * the caller owns. On GW_EINVAL *why gets a heap string, one problem per
 * line, each "path:line:col: field: message" (at most CTL_ERRS_MAX lines plus
 * a count), and *out is untouched. Pure; safe from any thread. */
GW_MUST_CHECK gw_err ctl_src_file_parse(const char *text, size_t len, const char *path,
                                        pm_snapshot **out, char **why);

/* Reads and parses the file at <path> (at most CTL_SRC_FILE_MAX_BYTES), as
 * ctl_src_file_parse. GW_EIO with *why when it cannot be read. */
GW_MUST_CHECK gw_err ctl_src_file_load(const char *path, pm_snapshot **out, char **why);

/* Loads <path> now and, on success, hands the set to <store> and starts
 * polling every <poll_ms>. A file that cannot be loaded at start is an error
 * (logged, counted in <metrics>; returns GW_EINVAL or GW_EIO) so the
 * controller refuses to start on a bad config rather than run empty.
 * <loop>, <store> and <metrics> are borrowed and must outlive the source;
 * <path> is copied. */
GW_MUST_CHECK gw_err ctl_src_file_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics,
                                        const char *path, uint64_t poll_ms, ctl_src_file **out);

/* Forces a stat check now (as if the poll timer fired); for tests and SIGHUP. */
void ctl_src_file_poll(ctl_src_file *f);

/* Re-reads the file now whatever its stat says (SIGHUP). */
void ctl_src_file_reload(ctl_src_file *f);

/* Stops polling and frees <f>. The set it gave the store stays there. NULL ok. */
void ctl_src_file_free(ctl_src_file *f);

#endif
