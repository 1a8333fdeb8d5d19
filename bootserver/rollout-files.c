/* Rollouts that move a host file set (rollout-files.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "filesets.h"
#include "json.h"
#include "log.h"
#include "rollout-files.h"
#include "store-files.h"
#include "store-rollout-files.h"
#include "store-rollouts.h"
#include "util.h"

void rollout_files_release(RolloutFiles *f) {
        if (!f)
                return;
        free(f->spec);
        free(f->from_spec);
        *f = (RolloutFiles) {};
}

int rollout_files_resolve(StoreTx *tx, const RolloutSpec *s, RolloutFiles *ret, char **ret_error) {
        _cleanup_(file_set_row_release) FileSetRow to = {}, from = {};
        RolloutFiles f = {};
        int64_t busy;
        int r;

        snprintf(f.name, sizeof f.name, "%s", s->files_name);
        r = store_file_set_get(tx, f.name, s->files_version, &to);
        if (r == -ENOENT) {
                *ret_error = s->files_version ? strdup_printf("'files': file set '%s' has no version %" PRIi64,
                                                              f.name, s->files_version)
                                              : strdup_printf("'files': no file set '%s'", f.name);
                return *ret_error ? -ENXIO : -ENOMEM;
        }
        if (r < 0)
                return r;
        r = store_file_set_rolling(tx, f.name, &busy);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret_error = strdup_printf("file set '%s' is being rolled out by rollout %" PRIi64, f.name, busy);
                return *ret_error ? -EBUSY : -ENOMEM;
        }
        r = store_file_set_live_get(tx, f.name, &f.from);
        if (r < 0)
                return r;
        if (to.seq == f.from) {
                *ret_error = strdup_printf("file set '%s' is at version %" PRIi64 " already: make a new version "
                                           "held back first (slipctl files set --hold)",
                                           f.name, to.seq);
                return *ret_error ? -EBUSY : -ENOMEM;
        }
        if (f.from > 0) {
                r = store_file_set_get(tx, f.name, f.from, &from);
                if (r < 0)
                        return r;
                f.from_spec = TAKE_PTR(from.spec);
        }
        f.seq = to.seq;
        f.spec = TAKE_PTR(to.spec);
        *ret = f;
        return 0;
}

int rollout_files_selects(StoreTx *tx, const RolloutFiles *f, const char *id) {
        _cleanup_(host_release) Host h = {};
        int r;

        r = store_host_get(tx, id, &h);
        if (r < 0)
                return r;
        return file_set_selects(f->spec, &h) || file_set_selects(f->from_spec, &h);
}

int rollout_files_add_host(StoreTx *tx, int64_t rid, const RolloutFiles *f, const char *id) {
        int64_t prev = f->from;
        int r;

        r = store_file_pin_get(tx, id, f->name, &prev);
        if (r < 0)
                return r;
        return store_rollout_host_set_files(tx, rid, id, f->seq, prev);
}

int rollout_files_assign(StoreTx *tx, int64_t rid, const char *name, const char *id, char **ret_why) {
        _cleanup_error_ Error error = {};
        int64_t seq, prev;
        char digest[65];
        int r;

        r = store_rollout_host_files(tx, rid, id, &seq, &prev);
        if (r < 0)
                return r;
        r = store_file_pin_set(tx, id, name, seq);
        if (r < 0)
                return r;
        r = files_host_render(tx, id, NULL, digest, &error);
        /* Only what the host's labels and the templates make fails a host
         * (a missing variable, a path twice, too large): a database error
         * fails the tick, which the next one does again. */
        if (r < 0 && (!error.message || (r != -ENOENT && r != -EEXIST && r != -EFBIG && r != -EINVAL)))
                return r;
        if (r < 0) {
                /* The host keeps what it had: a version its labels cannot
                 * render would leave it without a files digest. */
                *ret_why = strdup_printf("its files of file set '%s' version %" PRIi64 " cannot be rendered: %s",
                                         name, seq, error.message);
                if (!*ret_why)
                        return -ENOMEM;
                r = store_file_pin_set(tx, id, name, prev);
                return r < 0 ? r : 0;
        }
        r = store_rollout_host_set_digest(tx, rid, id, digest);
        return r < 0 ? r : 1;
}

/* The files digest host x reports on its booted slot, or NULL. */
static const char *booted_files(const RolloutFilesHost *x, json_t **slots) {
        char slot[2] = { x->booted_slot, 0 };

        if (!x->booted_slot || !x->slots)
                return NULL;
        *slots = json_loads(x->slots, 0, NULL);
        return json_string_value(json_object_get(json_object_get(*slots, slot), "files"));
}

int rollout_files_statuses(StoreTx *tx, int64_t rid) {
        RolloutFilesHost *v = NULL;
        size_t n = 0;
        int r;

        r = store_rollout_files_assigned(tx, rid, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const RolloutFilesHost *x = &v[i];
                _cleanup_json_ json_t *slots = NULL;
                const char *files = booted_files(x, &slots);
                bool done = streq_ptr(x->state, "healthy") && streq_ptr(x->current_image, x->target) &&
                            x->digest && streq_ptr(files, x->digest);
                /* A fallback of a change of files leaves the host on the
                 * same image: it is the state since the assignment that
                 * tells, not the image. */
                bool failed = !done && (streq_ptr(x->state, "rolled-back") || streq_ptr(x->state, "failed")) &&
                              x->state_since >= x->assigned_at;

                if (done || failed)
                        r = store_rollout_host_finish(tx, rid, x->host, done, x->message);
        }
        rollout_files_hosts_free(v, n);
        return r;
}

int rollout_files_revert(StoreTx *tx, int64_t rid) {
        _cleanup_strv_free_ char **hosts = NULL;
        _cleanup_free_ int64_t *prev = NULL;
        _cleanup_free_ char *name = NULL;
        int64_t live = 0;
        size_t n = 0;
        int r;

        r = store_rollout_files(tx, rid, &name, NULL, NULL);
        if (r <= 0)
                return r;
        r = store_rollout_files_unfinished(tx, rid, &hosts, &prev, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = store_file_pin_set(tx, hosts[i], name, prev[i]);
        if (r >= 0)
                r = store_file_set_live_get(tx, name, &live);
        return r < 0 ? r : store_file_pins_drop(tx, name, live);
}

int rollout_files_done(StoreTx *tx, int64_t rid, bool has_selector) {
        _cleanup_free_ char *name = NULL;
        int64_t seq = 0;
        int r;

        r = store_rollout_files(tx, rid, &name, &seq, NULL);
        if (r <= 0)
                return r;
        if (has_selector) {
                int64_t live = 0;
                r = store_file_set_live_get(tx, name, &live);
                return r < 0 ? r : store_file_pins_drop(tx, name, live);
        }
        r = store_file_set_live_set(tx, name, seq);
        return r < 0 ? r : store_file_pins_drop(tx, name, seq);
}
