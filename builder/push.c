#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apiclient.h"
#include "image.h"
#include "log.h"
#include "manifest.h"
#include "progress.h"
#include "push.h"
#include "util.h"

typedef struct PushBlob {
        const char *what; /* "manifest", "signature" or the artifact's type */
        char sha256[65];
        uint64_t size;
        bool missing;
        bool uploaded;
} PushBlob;

typedef struct Push {
        const PushOptions *opts;
        ApiClient *api;
        Store *store;
        Progress *progress;
        char label[256]; /* "name version" */
        PushBlob *blobs;
        size_t n_blobs;
        /* upload accounting */
        size_t n_missing, n_uploaded;
        uint64_t bytes_total, bytes_done;
} Push;

/* Adds a blob unless an earlier one has the same digest. */
static int push_add_blob(Push *p, const char *what, const char *sha256, uint64_t size) {
        PushBlob *b;

        for (size_t i = 0; i < p->n_blobs; i++)
                if (streq(p->blobs[i].sha256, sha256))
                        return 0;
        b = reallocarray(p->blobs, p->n_blobs + 1, sizeof(PushBlob));
        if (!b)
                return -ENOMEM;
        p->blobs = b;
        b = &p->blobs[p->n_blobs++];
        *b = (PushBlob) { .what = what, .size = size };
        snprintf(b->sha256, sizeof(b->sha256), "%s", sha256);
        return 0;
}

/* Checks that every blob is complete in the local store before anything is
 * sent. */
static int push_check_local(Push *p) {
        for (size_t i = 0; i < p->n_blobs; i++) {
                _cleanup_free_ char *path = store_blob_path(p->store, p->blobs[i].sha256);
                struct stat st;

                if (!path)
                        return log_oom();
                if (stat(path, &st) < 0)
                        return log_error_errno(negative_errno(), "cannot push %s: its %s blob '%s' is missing: %m",
                                               p->label, p->blobs[i].what, path);
                if ((uint64_t) st.st_size != p->blobs[i].size)
                        return log_error_errno(-EBADMSG,
                                               "cannot push %s: its %s blob '%s' has %" PRIu64
                                               " bytes, the manifest says %" PRIu64 " (run verify)",
                                               p->label, p->blobs[i].what, path, (uint64_t) st.st_size,
                                               p->blobs[i].size);
        }
        return 0;
}

/* Logs the client's last failure: "cannot <doing>: <message>", or only
 * that the server cannot be reached. */
static int push_log_error(Push *p, int r, const char *doing) {
        const char *hint = r == -EACCES && !p->opts->token ? "; pass --token, --token-file or set SLIPWAY_TOKEN"
                                                           : "";

        progress_end(p->progress); /* the message gets a line of its own */
        if (api_client_unreachable(p->api))
                return log_error_errno(r, "cannot push %s: %s", p->label, api_client_error(p->api));
        return log_error_errno(r, "cannot %s: %s%s", doing, api_client_error(p->api), hint);
}

/* Versions are immutable: when the server already has NAME:VERSION as
 * another image, the push would upload every blob only to be refused at
 * the end. Asks first, so such a push fails before it sends a byte. */
static int push_check_conflict(Push *p, const LoadedImage *img) {
        _cleanup_free_ char *path = strdup_printf("/v1/images/%s:%s", img->entry.name, img->entry.version);
        json_t *reply = NULL, *id;
        int r;

        if (!path)
                return log_oom();
        r = api_request(p->api, "GET", path, NULL, NULL, &reply);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                _cleanup_free_ char *doing = strdup_printf("look for %s on %s", p->label, api_client_url(p->api));
                return push_log_error(p, r, doing ? doing : "look for the image");
        }
        id = json_object_get(reply, "id");
        if (json_is_string(id) && streq(json_string_value(id), img->entry.id)) {
                json_decref(reply);
                return 0;
        }
        progress_end(p->progress);
        r = log_error_errno(-EEXIST,
                            "cannot push %s: %s:%s is already published on %s as image %.12s, this one is %.12s; "
                            "versions are immutable, build it as a new version",
                            p->label, img->entry.name, img->entry.version, api_client_url(p->api),
                            json_is_string(id) ? json_string_value(id) : "?", img->entry.id);
        json_decref(reply);
        return r;
}

/* Asks the server which blobs it has. */
static int push_find_missing(Push *p) {
        progress_phase(p->progress, "check", "%zu blobs of %s on %s", p->n_blobs, p->label, api_client_url(p->api));
        for (size_t i = 0; i < p->n_blobs; i++) {
                char path[96];
                int r;

                snprintf(path, sizeof(path), "/blobs/sha256/%s", p->blobs[i].sha256);
                r = api_head(p->api, path, NULL);
                if (r == -ENOENT) {
                        p->blobs[i].missing = true;
                        p->n_missing++;
                        p->bytes_total += p->blobs[i].size;
                } else if (r < 0) {
                        _cleanup_free_ char *doing = strdup_printf("look for the %s of %s on %s", p->blobs[i].what,
                                                                   p->label, api_client_url(p->api));
                        return push_log_error(p, r, doing ? doing : "look for a blob");
                }
                progress_update(p->progress, i + 1, p->n_blobs, 0, 0);
        }
        return 0;
}

static void upload_progress(uint64_t sent, uint64_t total, void *userdata) {
        Push *p = userdata;

        /* The blob's end is shown by push_upload(), with the item counted. */
        if (sent == total)
                return;
        progress_update(p->progress, p->n_uploaded, p->n_missing, p->bytes_done + sent, p->bytes_total);
}

static int push_upload(Push *p, PushBlob *b) {
        _cleanup_free_ char *src = store_blob_path(p->store, b->sha256);
        _cleanup_close_ int fd = -1;
        char path[96];
        int r;

        if (!src)
                return log_oom();
        fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                progress_end(p->progress);
                return log_error_errno(r, "cannot push %s: cannot open '%s': %m", p->label, src);
        }
        snprintf(path, sizeof(path), "/v1/blobs/sha256/%s", b->sha256);
        r = api_upload_fd(p->api, path, fd, b->size, upload_progress, p, NULL, NULL);
        if (r < 0) {
                _cleanup_free_ char *doing = strdup_printf("upload the %s of %s to %s", b->what, p->label,
                                                           api_client_url(p->api));
                return push_log_error(p, r, doing ? doing : "upload a blob");
        }
        b->uploaded = true;
        p->n_uploaded++;
        p->bytes_done += b->size;
        progress_update(p->progress, p->n_uploaded, p->n_missing, p->bytes_done, p->bytes_total);
        return 0;
}

static int push_upload_missing(Push *p) {
        char buf[32];

        if (p->n_missing == 0) {
                progress_phase(p->progress, "upload", "nothing to upload: the server has all %zu blobs", p->n_blobs);
                return 0;
        }
        progress_phase(p->progress, "upload", "%zu of %zu blobs, %s", p->n_missing, p->n_blobs,
                       format_bytes(buf, sizeof(buf), p->bytes_total));
        for (size_t i = 0; i < p->n_blobs; i++)
                if (p->blobs[i].missing) {
                        int r = push_upload(p, &p->blobs[i]);
                        if (r < 0)
                                return r;
                }
        progress_end(p->progress);
        return 0;
}

/* Returns the blob with digest hex, or NULL when it is not one of ours. */
static PushBlob *push_find_blob(Push *p, const char *hex) {
        for (size_t i = 0; i < p->n_blobs; i++)
                if (streq(p->blobs[i].sha256, hex))
                        return &p->blobs[i];
        return NULL;
}

/* The server answered missing_blobs although HEAD found them (a blob file
 * without its catalog row, say): uploads the ones it names. Returns 1 when
 * they were uploaded and publishing is worth another try, 0 when one of
 * them is not ours or was sent already (the client's error state is still
 * the server's answer then). */
static int push_upload_named(Push *p) {
        json_t *missing = json_object_get(api_client_error_reply(p->api), "missing"), *m;
        _cleanup_strv_free_ char **names = NULL;
        size_t i;
        int r;

        json_array_foreach(missing, i, m) {
                PushBlob *b = push_find_blob(p, strempty(json_string_value(m)));
                if (!b || b->uploaded)
                        return 0;
                /* Copied: the next request replaces the error reply. */
                if (strv_extend(&names, b->sha256) < 0)
                        return log_oom();
        }
        if (!names)
                return 0;
        for (char **n = names; *n; n++) {
                PushBlob *b = push_find_blob(p, *n);
                if (!b->missing) {
                        b->missing = true;
                        p->n_missing++;
                        p->bytes_total += b->size;
                }
                r = push_upload(p, b);
                if (r < 0)
                        return r;
        }
        return 1;
}

/* Until the image that the server answered 202 for is visible: polls its
 * state once a second, with its copies as progress. */
static int push_wait_replicas(Push *p, const LoadedImage *img) {
        _cleanup_free_ char *path = strdup_printf("/v1/images/%s", img->entry.id);
        uint64_t copies = 0, replicas = 0;
        time_t start = time(NULL);
        int r;

        if (!path)
                return log_oom();
        progress_phase(p->progress, "replicate", "%s to the bootservers' instances", p->label);
        for (;;) {
                json_t *reply = NULL;
                const char *state;

                r = api_request(p->api, "GET", path, NULL, NULL, &reply);
                if (r < 0) {
                        _cleanup_free_ char *doing = strdup_printf("follow %s on %s", p->label,
                                                                   api_client_url(p->api));
                        return push_log_error(p, r, doing ? doing : "follow the image");
                }
                state = json_string_value(json_object_get(reply, "state"));
                copies = (uint64_t) json_integer_value(json_object_get(reply, "copies"));
                replicas = (uint64_t) json_integer_value(json_object_get(reply, "replicas"));
                r = !state || streq(state, "visible");
                json_decref(reply);
                if (r)
                        return 0;
                progress_update(p->progress, copies, replicas, 0, 0);
                if ((uint64_t) (time(NULL) - start) >= p->opts->replicas_timeout)
                        break;
                sleep(1);
        }
        progress_end(p->progress);
        return log_error_errno(-ETIMEDOUT,
                               "%s is not visible on %s after %" PRIu64 " s: its blobs have %" PRIu64
                               " of the %" PRIu64 " copies wanted; it stays replicating and becomes visible "
                               "when they are there",
                               p->label, api_client_url(p->api), p->opts->replicas_timeout, copies, replicas);
}

static int push_publish(Push *p, const LoadedImage *img, long *ret_status) {
        _cleanup_free_ char *doing = NULL;
        json_t *body;
        int r;

        progress_phase(p->progress, "publish", "%s (%.12s)", p->label, img->entry.id);
        body = json_pack("{s:s, s:s}", "manifest", img->entry.manifest_sha256, "signature",
                         img->entry.signature_sha256);
        if (!body)
                return log_oom();
        for (int attempt = 0;; attempt++) {
                r = api_request(p->api, "POST", "/v1/images", body, ret_status, NULL);
                if (r != -ENODATA || attempt > 0)
                        break;
                r = push_upload_named(p);
                if (r < 0) {
                        json_decref(body);
                        return r; /* logged */
                }
                if (r == 0) {
                        r = -ENODATA; /* the error state is still the server's answer */
                        break;
                }
        }
        json_decref(body);
        if (r < 0) {
                doing = strdup_printf("publish %s on %s", p->label, api_client_url(p->api));
                return push_log_error(p, r, doing ? doing : "publish");
        }
        return 0;
}

int push_image(Store *s, const char *ref, const PushOptions *opts) {
        _cleanup_api_client_free_ ApiClient *api = NULL;
        _cleanup_progress_free_ Progress *progress = NULL;
        LoadedImage img;
        Push p = { .opts = opts, .store = s };
        char sent[32];
        long status = 0;
        _cleanup_error_ Error e = {};
        int r;

        r = api_client_new(opts->url, &api, &e);
        if (r < 0)
                return log_error_errno(r, "%s", strempty(e.message));
        if (opts->token) {
                r = api_client_set_token(api, opts->token);
                if (r == -EINVAL)
                        return log_error_errno(r, "the token holds spaces or control characters, or is too long");
                if (r < 0)
                        return log_oom();
        }
        if (opts->ca_file) {
                if (access(opts->ca_file, R_OK) < 0)
                        return log_error_errno(negative_errno(), "cannot read the CA file '%s': %m", opts->ca_file);
                if (api_client_set_ca_file(api, opts->ca_file) < 0)
                        return log_oom();
        }
        /* Uploads are never cut off; the metadata calls are small. */
        api_client_set_timeout(api, 120);
        p.api = api;

        r = image_load(s, ref, &img);
        if (r < 0)
                return r;
        snprintf(p.label, sizeof(p.label), "%s %s", img.entry.name, img.entry.version);
        r = push_add_blob(&p, "manifest", img.entry.manifest_sha256, img.manifest_size);
        if (r >= 0)
                r = push_add_blob(&p, "signature", img.entry.signature_sha256, img.sig_size);
        for (size_t i = 0; r >= 0 && i < img.manifest->n_artifacts; i++)
                r = push_add_blob(&p, img.manifest->artifacts[i].type, img.manifest->artifacts[i].sha256,
                                  img.manifest->artifacts[i].size);
        if (r < 0) {
                r = log_oom();
                goto out;
        }
        r = push_check_local(&p);
        if (r < 0)
                goto out;

        progress = progress_new(stderr, opts->quiet);
        if (!progress) {
                r = log_oom();
                goto out;
        }
        p.progress = progress;
        r = push_check_conflict(&p, &img);
        if (r >= 0)
                r = push_find_missing(&p);
        if (r >= 0)
                r = push_upload_missing(&p);
        if (r >= 0)
                r = push_publish(&p, &img, &status);
        if (r >= 0 && status == 202 && opts->replicas_timeout > 0)
                r = push_wait_replicas(&p, &img);
        progress_end(progress);
        if (r < 0)
                goto out;

        format_bytes(sent, sizeof(sent), p.bytes_done);
        if (status == 202 && opts->replicas_timeout == 0)
                printf("pushed %s (%.12s) to %s, replicating: %zu blob(s) uploaded, %zu already there, %s sent\n",
                       p.label, img.entry.id, api_client_url(api), p.n_uploaded, p.n_blobs - p.n_uploaded, sent);
        else if (status == 201 || status == 202)
                printf("pushed %s (%.12s) to %s: %zu blob(s) uploaded, %zu already there, %s sent\n", p.label,
                       img.entry.id, api_client_url(api), p.n_uploaded, p.n_blobs - p.n_uploaded, sent);
        else
                printf("%s (%.12s) was already published on %s: %zu blob(s) uploaded, %zu already there, %s sent\n",
                       p.label, img.entry.id, api_client_url(api), p.n_uploaded, p.n_blobs - p.n_uploaded, sent);
        r = 0;
out:
        free(p.blobs);
        image_release(&img);
        return r;
}
