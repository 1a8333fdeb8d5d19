/* Host files on the host: staged with a slot, applied at boot (files.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashpoint.h"
#include "fileio.h"
#include "files.h"
#include "hostfiles.h"
#include "json.h"
#include "log.h"
#include "util.h"

/* The largest staged copy read back: every file at its cap, and more. */
#define FILES_JSON_MAX (HOST_FILES_MAX * (size_t) HOST_FILE_CONTENT_MAX / 16)

static char *files_dir(Agent *a) {
        return path_join(a->config.state_dir, "files");
}

static char *slot_path(Agent *a, char slot) {
        _cleanup_free_ char *dir = files_dir(a);
        char name[] = "x.json";

        name[0] = slot;
        return dir ? path_join(dir, name) : NULL;
}

/* Loads a JSON file of ours; -ENOENT when it is not there. */
static int json_load(const char *path, json_t **ret) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        json_t *j;
        int r;

        r = read_full_file(path, FILES_JSON_MAX, &data, &size);
        if (r < 0)
                return r;
        j = json_loadb(data, size, 0, NULL);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}

/* The slot's staged files; a slot without them has none (an empty
 * array and the digest of none). */
static int slot_load(Agent *a, char slot, json_t **ret) {
        _cleanup_free_ char *path = slot_path(a, slot);
        _cleanup_error_ Error e = {};
        json_t *j = NULL;
        char digest[65];
        int r;

        if (!path)
                return -ENOMEM;
        r = json_load(path, &j);
        if (r == -ENOENT) {
                _cleanup_json_ json_t *none = json_array();
                if (!none || host_files_digest(none, digest) < 0)
                        return -ENOMEM;
                j = json_pack("{s:s, s:O}", "digest", digest, "files", none);
                if (!j)
                        return -ENOMEM;
                r = 0;
        }
        if (r < 0)
                return r;
        if (host_files_check(j, &e) < 0) {
                log_warning("the host files staged for slot %c: %s", slot, strempty(e.message));
                json_decref(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

int files_slot_digest(Agent *a, char slot, char ret[65]) {
        _cleanup_json_ json_t *j = NULL;
        int r;

        r = slot_load(a, slot, &j);
        if (r < 0)
                return r;
        memcpy(ret, json_string_value(json_object_get(j, "digest")), 65);
        return 0;
}

bool files_slot_has(Agent *a, char slot, const char *digest) {
        char mine[65];

        if (!digest)
                return true;
        return files_slot_digest(a, slot, mine) >= 0 && streq(mine, digest);
}

/* Writes j as slot's staged files, atomically. */
static int slot_write(Agent *a, char slot, const json_t *j) {
        _cleanup_free_ char *dir = files_dir(a), *path = slot_path(a, slot), *text = NULL;
        int r;

        if (!dir || !path)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int files_stage(Agent *a, char slot, const char *want, Error *error) {
        _cleanup_free_ char *id = NULL, *path = NULL;
        _cleanup_json_ json_t *reply = NULL, *keep = NULL, *files = NULL;
        const json_t *f;
        size_t i;
        int r;

        if (!want) {
                /* The server said nothing of files (it could not render
                 * them): the new slot keeps what runs. */
                r = slot_load(a, a->booted_slot, &keep);
                if (r < 0)
                        return error_set(error, r, "cannot read the host files of slot %c: %m", a->booted_slot);
        } else {
                id = api_escape(a->state.host_id);
                path = id ? strdup_printf("/v1/hosts/%s/files", id) : NULL;
                if (!path)
                        return error_set(error, -ENOMEM, "out of memory");
                r = api_client_set_token(a->api, a->state.token);
                if (r >= 0)
                        r = api_request(a->api, "GET", path, NULL, NULL, &reply);
                if (r < 0)
                        return error_set(error, r, "cannot fetch the host files: %s", api_client_error(a->api));
                r = host_files_check(reply, error);
                if (r < 0)
                        return r;
                if (!streq(json_string_value(json_object_get(reply, "digest")), want))
                        return error_set(error, -ESTALE, "the host files changed while they were fetched");
                /* The copy keeps what the digest covers. */
                files = json_array();
                if (!files)
                        return error_set(error, -ENOMEM, "out of memory");
                json_array_foreach(json_object_get(reply, "files"), i, f)
                        if (json_array_append_new(files, json_pack("{s:O, s:O, s:O, s:O}", "path",
                                                                   json_object_get(f, "path"), "mode",
                                                                   json_object_get(f, "mode"), "owner",
                                                                   json_object_get(f, "owner"), "content",
                                                                   json_object_get(f, "content"))) < 0)
                                return error_set(error, -ENOMEM, "out of memory");
                keep = json_pack("{s:s, s:O}", "digest", want, "files", files);
                if (!keep)
                        return error_set(error, -ENOMEM, "out of memory");
        }
        r = slot_write(a, slot, keep);
        if (r < 0)
                return error_set(error, r, "cannot stage the host files for slot %c: %m", slot);
        crashpoint("files-staged");
        log_info("host files %.12s staged for slot %c (%zu files)",
                 json_string_value(json_object_get(keep, "digest")), slot,
                 json_array_size(json_object_get(keep, "files")));
        return 0;
}

/* Whether path under root holds content with mode and owner already. */
static bool file_same(const char *path, const char *content, mode_t mode, uid_t uid, gid_t gid) {
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t size = 0;

        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != mode ||
            (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid)))
                return false;
        if (read_full_file(path, HOST_FILE_CONTENT_MAX, &data, &size) < 0)
                return false;
        return size == strlen(content) && memcmp(data, content, size) == 0;
}

/* Writes one file atomically (common/fileio.h), its directories made as
 * needed. The owner is set when running as root. */
static int file_write(const char *path, const char *content, mode_t mode, uid_t uid, gid_t gid) {
        int r;

        r = mkdir_parents(path, 0755);
        if (r < 0)
                return r;
        if (geteuid() != 0) {
                uid = (uid_t) -1;
                gid = (gid_t) -1;
        }
        return write_file_atomic_owned(path, content, strlen(content), mode, uid, gid);
}

/* Writes the record of applied files: the slot, the digest (NULL while
 * applying) and the paths of old and of the files of more (either NULL). */
static int record_write(const char *path, const char *dir, char slot, const char *digest, const json_t *old,
                        const json_t *more) {
        _cleanup_json_ json_t *paths = old ? json_deep_copy(old) : json_array(), *record = NULL;
        _cleanup_free_ char *text = NULL;
        const json_t *f;
        size_t i;
        int r;

        if (!paths)
                return -ENOMEM;
        json_array_foreach(more, i, f)
                if (json_array_append(paths, json_object_get(f, "path")) < 0)
                        return -ENOMEM;
        record = json_pack("{s:s, s:s?, s:O}", "slot", (char[]) { slot, 0 }, "digest", digest, "paths", paths);
        text = record ? json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (!text)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int files_apply(Agent *a, const char *root) {
        _cleanup_free_ char *dir = files_dir(a), *applied_path = NULL;
        _cleanup_json_ json_t *slot = NULL, *applied = NULL, *paths = json_array();
        const json_t *f, *old;
        size_t i;
        int changed = 0, r;

        applied_path = dir ? path_join(dir, "applied.json") : NULL;
        if (!applied_path || !paths)
                return log_oom();
        r = slot_load(a, a->booted_slot, &slot);
        if (r < 0)
                return log_error_errno(r, "cannot read the host files of slot %c: %m", a->booted_slot);
        r = json_load(applied_path, &applied);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "cannot read '%s', going on as if nothing was applied: %m", applied_path);
        /* First the record names what is there and what is about to be:
         * a crash in the writes below leaves no file that a later apply
         * does not know to remove. */
        r = record_write(applied_path, dir, a->booted_slot, NULL, json_object_get(applied, "paths"),
                         json_object_get(slot, "files"));
        if (r < 0)
                return log_error_errno(r, "cannot write '%s': %m", applied_path);
        json_array_foreach(json_object_get(slot, "files"), i, f) {
                const char *p = json_string_value(json_object_get(f, "path"));
                const char *content = json_string_value(json_object_get(f, "content"));
                const char *owner = json_string_value(json_object_get(f, "owner"));
                _cleanup_free_ char *at = path_join(root, p);
                mode_t mode = (mode_t) strtoul(json_string_value(json_object_get(f, "mode")), NULL, 8);
                uid_t uid = (uid_t) strtoul(owner, NULL, 10);
                gid_t gid = (gid_t) strtoul(strchr(owner, ':') + 1, NULL, 10);

                if (!at || json_array_append_new(paths, json_string(p)) < 0)
                        return log_oom();
                if (file_same(at, content, mode, uid, gid))
                        continue;
                r = file_write(at, content, mode, uid, gid);
                if (r < 0)
                        return log_error_errno(r, "cannot write host file '%s': %m", at);
                if (changed++ == 0)
                        crashpoint("files-applying");
        }
        /* What an earlier apply wrote and this slot lacks goes. */
        json_array_foreach(json_object_get(applied, "paths"), i, old) {
                const char *p = json_string_value(old);
                bool keep = false;
                const json_t *n;
                size_t k;

                if (!p || !host_file_path_valid(p))
                        continue;
                json_array_foreach(paths, k, n)
                        keep = keep || streq(json_string_value(n), p);
                if (keep)
                        continue;
                _cleanup_free_ char *at = path_join(root, p);
                if (!at)
                        return log_oom();
                if (unlink(at) < 0 && errno != ENOENT)
                        return log_error_errno(negative_errno(), "cannot remove host file '%s': %m", at);
                (void) fsync_parent_dir(at);
                changed++;
        }
        r = record_write(applied_path, dir, a->booted_slot, json_string_value(json_object_get(slot, "digest")), paths,
                         NULL);
        if (r < 0)
                return log_error_errno(r, "cannot write '%s': %m", applied_path);
        if (changed > 0) {
                crashpoint("files-applied");
                log_info("host files %.12s of slot %c applied under %s: %d changed",
                         json_string_value(json_object_get(slot, "digest")), a->booted_slot, root, changed);
        }
        return changed;
}
