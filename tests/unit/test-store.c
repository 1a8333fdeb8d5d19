#include "tests.h"
#include <sys/stat.h>

#include "fileio.h"
#include "hash.h"
#include "store.h"
#include "util.h"

static void test_blobs(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        _cleanup_free_ char *p = NULL;
        char sha[65], sha2[65];
        uint64_t size;
        struct stat st;
        (void) state;

        assert_int_equal(store_open("store", &s), 0);
        assert_int_equal(write_file_atomic("in", "hello", 5, 0644), 0);
        assert_int_equal(store_add_file(s, "in", sha, &size), 0);
        assert_int_equal(size, 5);
        assert_string_equal(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_true(store_has_blob(s, sha));
        p = store_blob_path(s, sha);
        assert_string_equal(p, "store/blobs/sha256/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0444);

        /* Adding the same content twice is a no-op; memory and file agree. */
        assert_int_equal(store_add_data(s, "hello", 5, sha2), 0);
        assert_string_equal(sha, sha2);
        assert_int_equal(store_add_file(s, "missing", sha2, &size), -ENOENT);
}

/* A name that is not a digest names no blob. The store once made a path of
 * anything ("../../x" led out of blobs/), where the server refused it
 * (-EINVAL): both go through common/blobstore.c now. */
static void test_blob_names(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        (void) state;

        assert_int_equal(store_open("store", &s), 0);
        assert_int_equal(write_file_atomic("store/blobs/x", "x", 1, 0644), 0);
        assert_null(store_blob_path(s, "../../blobs/x"));
        assert_false(store_has_blob(s, "../x"));
        assert_null(store_blob_path(s, "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"));
        assert_null(store_blob_path(s, "2cf24dba"));
}

static int count(const StoreImage *img, void *userdata) {
        (void) img;
        (*(int *) userdata)++;
        return 0;
}

static void test_publish(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        char m[65], sig[65], art[65];
        char *types[] = { (char *) "rootfs" }, *shas[] = { art };
        uint64_t sizes[] = { 3 };
        StoreImage img = {}, found;
        int n = 0;
        (void) state;

        assert_int_equal(store_open("store", &s), 0);
        assert_int_equal(store_add_data(s, "manifest", 8, m), 0);
        assert_int_equal(store_add_data(s, "sig", 3, sig), 0);
        assert_int_equal(store_add_data(s, "abc", 3, art), 0);

        memcpy(img.id, m, 65);
        memcpy(img.manifest_sha256, m, 65);
        memcpy(img.signature_sha256, sig, 65);
        img.name = (char *) "tiny";
        img.version = (char *) "1.0";
        img.arch = (char *) "x86_64";
        img.build_key = (char *) "key1";
        assert_int_equal(store_publish(s, &img, types, shas, sizes, 1), 0);
        /* The same ID again is fine, a different one for the same version is not. */
        assert_int_equal(store_publish(s, &img, types, shas, sizes, 1), 0);
        img.id[0] = img.id[0] == 'a' ? 'b' : 'a';
        assert_int_equal(store_publish(s, &img, types, shas, sizes, 1), -EEXIST);
        memcpy(img.id, m, 65);

        assert_int_equal(store_find_image(s, "tiny:1.0", &found), 0);
        assert_string_equal(found.id, m);
        store_image_release(&found);
        assert_int_equal(store_find_image(s, "tiny", &found), 0);
        store_image_release(&found);
        {
                char prefix[9];
                snprintf(prefix, sizeof(prefix), "%.8s", m);
                assert_int_equal(store_find_image(s, prefix, &found), 0);
                store_image_release(&found);
        }
        assert_int_equal(store_find_by_build_key(s, "key1", &found), 0);
        assert_string_equal(found.build_key, "key1");
        store_image_release(&found);
        assert_int_equal(store_find_image(s, "tiny:2.0", &found), -ENOENT);
        assert_int_equal(store_find_image(s, "other", &found), -ENOENT);
        assert_int_equal(store_list_images(s, count, &n), 0);
        assert_int_equal(n, 1);
}

/* A row may only point at blobs that exist: publishing before the blobs are
 * written is refused and leaves no row. */
static void test_publish_needs_blobs(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        char m[65];
        char missing[] = "0000000000000000000000000000000000000000000000000000000000000000";
        char *types[] = { (char *) "rootfs" }, *shas[] = { missing };
        uint64_t sizes[] = { 3 };
        StoreImage img = {}, found;
        (void) state;

        assert_int_equal(store_open("store", &s), 0);
        assert_int_equal(store_add_data(s, "manifest", 8, m), 0);
        memcpy(img.id, m, 65);
        memcpy(img.manifest_sha256, m, 65);
        memcpy(img.signature_sha256, m, 65);
        img.name = (char *) "tiny";
        img.version = (char *) "1.0";
        img.arch = (char *) "x86_64";
        assert_int_equal(store_publish(s, &img, types, shas, sizes, 1), -ENOENT);
        assert_int_equal(store_find_image(s, "tiny:1.0", &found), -ENOENT);
}

/* A full file system: the blob is refused with -ENOSPC and no temporary file
 * stays behind. Needs root for the small tmpfs; skipped otherwise. */
static void test_full_filesystem(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        _cleanup_free_ char *big = NULL;
        char sha[65];
        uint64_t size;
        int r;
        (void) state;

        if (geteuid() != 0) {
                skip();
                return;
        }
        assert_int_equal(mkdir_p("small", 0755), 0);
        assert_int_equal(system("mount -t tmpfs -o size=256k tmpfs small"), 0);
        assert_int_equal(store_open("small/store", &s), 0);
        big = malloc(1 << 20);
        assert_non_null(big);
        memset(big, 'x', 1 << 20);
        assert_int_equal(write_file_atomic("big", big, 1 << 20, 0644), 0);
        r = store_add_file(s, "big", sha, &size);
        assert_int_equal(system("test -z \"$(ls small/store/tmp)\" && test -z \"$(ls small/store/blobs/sha256)\""),
                         0);
        store_free(TAKE_PTR(s));
        assert_int_equal(system("umount small"), 0);
        assert_int_equal(r, -ENOSPC);
}

/* What a killed writer left in tmp/ goes, but only when no other process
 * has the store open: one that has may be writing there. */
static void test_clean_tmp(void **state) {
        _cleanup_store_free_ Store *s = NULL;
        Store *other = NULL;
        (void) state;

        assert_int_equal(store_open("store", &s), 0);
        assert_int_equal(write_file_atomic("store/tmp/blob.tmp-AbC123", "part", 4, 0644), 0);
        assert_int_equal(mkdir_p("store/tmp/dir/sub", 0755), 0);

        /* Another open store (another open file, as another process has). */
        assert_int_equal(store_open("store", &other), 0);
        assert_int_equal(store_clean_tmp(s), 0);
        assert_true(path_exists("store/tmp/blob.tmp-AbC123"));
        store_free(other);

        assert_int_equal(store_clean_tmp(s), 2);
        assert_false(path_exists("store/tmp/blob.tmp-AbC123"));
        assert_false(path_exists("store/tmp/dir"));
        assert_true(path_exists("store/tmp"));
        assert_int_equal(store_clean_tmp(s), 0);

        /* The store still holds tmp/: a second opener cannot clean it. */
        assert_int_equal(store_open("store", &other), 0);
        assert_int_equal(write_file_atomic("store/tmp/x", "x", 1, 0644), 0);
        assert_int_equal(store_clean_tmp(other), 0);
        assert_true(path_exists("store/tmp/x"));
        store_free(other);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_blobs),
                test_in_dir(test_blob_names),
                test_in_dir(test_publish),
                test_in_dir(test_publish_needs_blobs),
                test_in_dir(test_full_filesystem),
                test_in_dir(test_clean_tmp),
        };
        return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
