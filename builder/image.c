#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>

#include "fileio.h"
#include "hash.h"
#include "image.h"
#include "log.h"
#include "manifest.h"
#include "sign.h"
#include "util.h"

void image_release(LoadedImage *img) {
        store_image_release(&img->entry);
        free(img->manifest_bytes);
        manifest_free(img->manifest);
        free(img->sig);
        *img = (LoadedImage){};
}

int image_load(Store *s, const char *ref, LoadedImage *ret) {
        LoadedImage img = {};
        _cleanup_free_ char *mpath = NULL, *spath = NULL;
        char err[256] = "";
        size_t n;
        int r;

        r = store_find_image(s, ref, &img.entry);
        if (r == -ENOENT)
                return log_error_errno(r, "no image '%s' in store '%s'", ref, store_dir(s));
        if (r == -ENOTUNIQ)
                return log_error_errno(r, "image ID prefix '%s' is ambiguous", ref);
        if (r < 0)
                return log_error_errno(r, "cannot read the catalog of '%s': %m", store_dir(s));

        mpath = store_blob_path(s, img.entry.manifest_sha256);
        spath = store_blob_path(s, img.entry.signature_sha256);
        if (!mpath || !spath) {
                image_release(&img);
                return log_oom();
        }
        r = read_full_file(mpath, MANIFEST_SIZE_MAX, &img.manifest_bytes, &img.manifest_size);
        if (r < 0) {
                log_error_errno(r, "cannot read manifest '%s': %m", mpath);
                goto fail;
        }
        r = read_full_file(spath, 4096, (char **) &img.sig, &n);
        if (r < 0) {
                log_error_errno(r, "cannot read signature '%s': %m", spath);
                goto fail;
        }
        img.sig_size = n;
        r = manifest_parse(img.manifest_bytes, img.manifest_size, &img.manifest, err, sizeof(err));
        if (r < 0) {
                log_error_errno(r, "%s: %s", mpath, err);
                goto fail;
        }
        *ret = img;
        return 0;
fail:
        image_release(&img);
        return r;
}

static int list_one(const StoreImage *img, void *userdata) {
        json_t *arr = userdata;
        char when[32];
        time_t t = (time_t) img->created;

        if (arr)
                return json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", img->id, "name",
                                                            img->name, "version", img->version, "arch", img->arch,
                                                            "created", (json_int_t) img->created)) < 0
                               ? -ENOMEM
                               : 0;
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime(&t));
        printf("%-20s %-12s %-8s %.16s  %s\n", img->name, img->version, img->arch, img->id, when);
        return 0;
}

int image_list(Store *s, bool json) {
        json_t *arr = json ? json_array() : NULL;
        int r;

        if (!json)
                printf("%-20s %-12s %-8s %-16s  %s\n", "NAME", "VERSION", "ARCH", "ID", "CREATED (UTC)");
        r = store_list_images(s, list_one, arr);
        if (r < 0) {
                json_decref(arr);
                return log_error_errno(r, "cannot list images: %m");
        }
        if (json) {
                json_dumpf(arr, stdout, JSON_INDENT(2));
                putchar('\n');
                json_decref(arr);
        }
        return 0;
}

/* Per repository of the image's lock: the keys its packages' signatures were
 * checked with, or that they were not. */
static void print_signatures(const json_t *lock) {
        json_t *repos = lock ? json_object_get(lock, "repos") : NULL, *r;
        size_t i;

        printf("\nsignatures\n");
        json_array_foreach(repos, i, r) {
                const char *id = strempty(json_string_value(json_object_get(r, "id")));
                json_t *gpgcheck = json_object_get(r, "gpgcheck"), *keys = json_object_get(r, "keys"), *k;
                size_t j;

                if (!json_is_boolean(gpgcheck))
                        printf("  %-8s not recorded (built before signatures were checked)\n", id);
                else if (json_is_false(gpgcheck))
                        printf("  %-8s NOT CHECKED (gpgcheck = 0)\n", id);
                else if (json_array_size(keys) == 0)
                        printf("  %-8s checked, no package from it\n", id);
                json_array_foreach(json_is_true(gpgcheck) ? keys : NULL, j, k)
                        printf("  %-8s key %s\n", id, strempty(json_string_value(k)));
        }
}

/* The tools that made the image's filesystems and disk, and where each
 * boot file came from (images built before they were recorded have none). */
static void print_tools_and_boot(const Manifest *m) {
        const char *key;
        json_t *v;

        if (json_object_size(m->tools) > 0) {
                printf("\ntools\n");
                json_object_foreach(m->tools, key, v)
                        printf("  %-12s %s\n", key, json_string_value(v));
        }
        if (json_object_size(m->boot) > 0) {
                printf("\nboot files\n");
                json_object_foreach(m->boot, key, v)
                        printf("  %-12s %s  from %s %s\n", key, json_string_value(json_object_get(v, "path")),
                               json_string_value(json_object_get(v, "source")),
                               json_string_value(json_object_get(v, "package")));
        }
}

/* What the resolution was asked: the install list, the module streams
 * active and what each group request expanded to. */
static void print_requested(const json_t *lock) {
        json_t *requested = lock ? json_object_get(lock, "requested") : NULL, *v;
        json_t *modules = lock ? json_object_get(lock, "modules") : NULL;
        json_t *groups = lock ? json_object_get(lock, "groups") : NULL;
        size_t i, k;

        printf("\nrequested\n ");
        json_array_foreach(requested, i, v)
                printf(" %s%s", strempty(json_string_value(v)), i + 1 < json_array_size(requested) ? "," : "");
        putchar('\n');
        json_array_foreach(modules, i, v) {
                const char *profile = json_string_value(json_object_get(v, "profile"));
                const char *required_by = json_string_value(json_object_get(v, "required_by"));

                printf("  module %s:%s%s%s (%s%s)\n", strempty(json_string_value(json_object_get(v, "name"))),
                       strempty(json_string_value(json_object_get(v, "stream"))), profile ? "/" : "",
                       strempty(profile),
                       required_by                                      ? "required by "
                       : json_is_true(json_object_get(v, "default")) ? "default stream"
                                                                        : "enabled",
                       strempty(required_by));
        }
        json_array_foreach(groups, i, v) {
                json_t *p;

                printf("  %s:", strempty(json_string_value(json_object_get(v, "request"))));
                json_array_foreach(json_object_get(v, "packages"), k, p)
                        printf(" %s", strempty(json_string_value(p)));
                putchar('\n');
        }
}

int image_inspect(Store *s, const char *ref, bool json) {
        LoadedImage img;
        const Manifest *m;
        json_t *pkgs;
        char buf[32];
        int r;

        r = image_load(s, ref, &img);
        if (r < 0)
                return r;
        m = img.manifest;
        if (json) {
                json_t *o = json_loadb(img.manifest_bytes, img.manifest_size, 0, NULL);
                json_t *out = json_pack("{s:s, s:o}", "id", img.entry.id, "manifest", o ? o : json_null());
                json_dumpf(out, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
                putchar('\n');
                json_decref(out);
                image_release(&img);
                return 0;
        }

        printf("image     %s %s (%s)\n", m->name, m->version, m->arch);
        printf("id        %s\n", img.entry.id);
        printf("built     %" PRIu64 " (SOURCE_DATE_EPOCH)\n", m->build_time);
        printf("kernel    %s\n", strempty(m->kernel_version));
        printf("cmdline   %s\n", strempty(m->cmdline));
        if (m->min_from_version)
                printf("min-from  %s\n", m->min_from_version);
        printf("\nartifacts\n");
        for (size_t i = 0; i < m->n_artifacts; i++)
                printf("  %-8s %10s  %s%s%s%s\n", m->artifacts[i].type,
                       format_bytes(buf, sizeof(buf), m->artifacts[i].size), m->artifacts[i].sha256,
                       m->artifacts[i].fstype ? " (" : "", strempty(m->artifacts[i].fstype),
                       m->artifacts[i].fstype ? ")" : "");
        pkgs = m->lock ? json_object_get(m->lock, "packages") : NULL;
        printf("\npackages (%zu)\n", json_array_size(pkgs));
        for (size_t i = 0; i < json_array_size(pkgs); i++) {
                json_t *p = json_array_get(pkgs, i);
                const char *epoch = json_string_value(json_object_get(p, "epoch"));
                printf("  %s-%s%s%s-%s.%s  %s\n", json_string_value(json_object_get(p, "name")),
                       epoch && !streq(epoch, "0") ? epoch : "", epoch && !streq(epoch, "0") ? ":" : "",
                       json_string_value(json_object_get(p, "version")),
                       json_string_value(json_object_get(p, "release")),
                       json_string_value(json_object_get(p, "arch")),
                       format_bytes(buf, sizeof(buf), (uint64_t) json_integer_value(json_object_get(p, "size"))));
        }
        print_requested(m->lock);
        print_signatures(m->lock);
        print_tools_and_boot(m);
        image_release(&img);
        return 0;
}

int image_verify(Store *s, const char *ref, const char *key_path) {
        LoadedImage img;
        char hex[65];
        _cleanup_free_ char *matched = NULL;
        struct stat st;
        int r;

        r = image_load(s, ref, &img);
        if (r < 0)
                return r;

        manifest_id(img.manifest_bytes, img.manifest_size, hex);
        if (!streq(hex, img.entry.id)) {
                r = log_error_errno(-EBADMSG, "manifest of %s %s does not hash to its image ID", img.entry.name,
                                    img.entry.version);
                goto out;
        }
        if (stat(key_path, &st) < 0) {
                r = log_error_errno(negative_errno(), "cannot read key '%s': %m", key_path);
                goto out;
        }
        if (S_ISDIR(st.st_mode))
                r = sign_verify_dir(key_path, img.manifest_bytes, img.manifest_size, img.sig, img.sig_size, &matched);
        else
                r = sign_verify(key_path, img.manifest_bytes, img.manifest_size, img.sig, img.sig_size);
        if (r == -EBADMSG) {
                r = log_error_errno(r, "signature of %s %s does not match key '%s'", img.entry.name, img.entry.version,
                                    key_path);
                goto out;
        }
        if (r == -ENOENT && S_ISDIR(st.st_mode)) {
                r = log_error_errno(r, "no *.pub key in '%s'", key_path);
                goto out;
        }
        if (r < 0) {
                r = log_error_errno(r, "cannot verify with key '%s': %m", key_path);
                goto out;
        }
        printf("signature  ok (%s)\n", matched ? matched : key_path);

        for (size_t i = 0; i < img.manifest->n_artifacts; i++) {
                const ManifestArtifact *a = &img.manifest->artifacts[i];
                _cleanup_free_ char *p = store_blob_path(s, a->sha256);
                uint64_t size;

                if (!p) {
                        r = log_oom();
                        goto out;
                }
                r = sha256_file_hex(p, hex, &size);
                if (r < 0) {
                        r = log_error_errno(r, "artifact '%s' (%s): cannot read '%s': %m", a->type, a->sha256, p);
                        goto out;
                }
                if (!streq(hex, a->sha256) || size != a->size) {
                        r = log_error_errno(-EBADMSG, "artifact '%s' at '%s' is corrupt: sha256 %s, size %" PRIu64
                                                      " (manifest: %s, %" PRIu64 ")",
                                            a->type, p, hex, size, a->sha256, a->size);
                        goto out;
                }
                printf("%-10s ok %s\n", a->type, a->sha256);
        }
        printf("%s %s %s verified\n", img.entry.name, img.entry.version, img.entry.id);
        r = 0;
out:
        image_release(&img);
        return r;
}

static const char *export_name(const ManifestArtifact *a) {
        if (streq(a->type, "kernel"))
                return "vmlinuz";
        if (streq(a->type, "initrd"))
                return "initrd.img";
        if (streq(a->type, "rootfs"))
                return a->fstype && streq(a->fstype, "squashfs") ? "rootfs.squashfs" : "rootfs.erofs";
        if (streq(a->type, "disk"))
                return "disk.img";
        return a->type;
}

/* Copies a blob out of the store (a reflink where the file system can).
 * Never a hard link: the exported file is the user's to change, and a
 * link would change the blob with it. */
static int export_blob(Store *s, const char *sha, const char *dst) {
        _cleanup_free_ char *src = store_blob_path(s, sha);
        if (!src)
                return -ENOMEM;
        return copy_file_atomic(src, dst, 0644);
}

int image_export(Store *s, const char *ref, const char *dir) {
        LoadedImage img;
        int r;

        r = image_load(s, ref, &img);
        if (r < 0)
                return r;
        r = mkdir_p(dir, 0755);
        if (r < 0) {
                r = log_error_errno(r, "cannot create '%s': %m", dir);
                goto out;
        }
        {
                _cleanup_free_ char *mp = path_join(dir, "manifest.json"), *sp = path_join(dir, "manifest.sig");
                if (!mp || !sp) {
                        r = log_oom();
                        goto out;
                }
                r = export_blob(s, img.entry.manifest_sha256, mp);
                if (r >= 0)
                        r = export_blob(s, img.entry.signature_sha256, sp);
                if (r < 0) {
                        r = log_error_errno(r, "cannot export the manifest into '%s': %m", dir);
                        goto out;
                }
        }
        for (size_t i = 0; i < img.manifest->n_artifacts; i++) {
                const ManifestArtifact *a = &img.manifest->artifacts[i];
                _cleanup_free_ char *p = path_join(dir, export_name(a));
                if (!p) {
                        r = log_oom();
                        goto out;
                }
                r = export_blob(s, a->sha256, p);
                if (r < 0) {
                        r = log_error_errno(r, "cannot export '%s' to '%s': %m", a->type, p);
                        goto out;
                }
                printf("%s\n", p);
        }
        r = 0;
out:
        image_release(&img);
        return r;
}
