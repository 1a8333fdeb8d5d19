/* common/blobstore.h: the blob store layout of slipway-build's store and
 * slipwayd's state directory, and its one errno map. */
#include "tests.h"

#include <dirent.h>
#include <sys/stat.h>

#include "blobstore.h"
#include "fileio.h"
#include "util.h"

#define HELLO "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define HELLO_PATH "root/blobs/sha256/2c/" HELLO

static int setup_root(void **state) {
        if (test_dir_setup(state) < 0 || mkdir_p("root/" BLOBSTORE_TMP_DIR, 0755) < 0 ||
            mkdir_p("root/" BLOBSTORE_BLOBS_DIR, 0755) < 0)
                return -1;
        return 0;
}

/* How many entries tmp/ holds. */
static int tmp_entries(void) {
        _cleanup_closedir_ DIR *d = opendir("root/" BLOBSTORE_TMP_DIR);
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        return n;
}

static int put(const char *expect, const char *data, char *ret_hex, uint64_t *ret_size) {
        BlobstoreWriter *w = NULL;
        int r = blobstore_writer_new("root", expect, &w);

        if (r < 0)
                return r;
        r = blobstore_writer_write(w, data, strlen(data));
        if (r < 0) {
                blobstore_writer_free(w);
                return r;
        }
        return blobstore_writer_commit(w, ret_hex, ret_size);
}

static void test_paths(void **state) {
        static const char *const bad[] = {
                "", "2cf24dba", HELLO "0", "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
                "../../../../../../../../../../../../../../../../../../../../../../etc/passwd",
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982g",
        };
        _cleanup_free_ char *p = NULL;
        (void) state;

        assert_int_equal(blobstore_path("root", HELLO, &p), 0);
        assert_string_equal(p, HELLO_PATH);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *q = NULL;

                assert_int_equal(blobstore_path("root", bad[i], &q), -EINVAL);
                assert_null(q);
                assert_int_equal(blobstore_has("root", bad[i]), -EINVAL);
        }
        assert_int_equal(blobstore_path("root", NULL, &p), -EINVAL);
        assert_int_equal(blobstore_has("root", HELLO), 0);
}

/* Named by what the bytes hash to: read-only, in place, tmp/ empty; a
 * second time changes nothing. */
static void test_write_unnamed(void **state) {
        char hex[65] = "";
        uint64_t size = 0;
        struct stat st;
        (void) state;

        assert_int_equal(put(NULL, "hello", hex, &size), 1);
        assert_string_equal(hex, HELLO);
        assert_int_equal(size, 5);
        assert_int_equal(stat(HELLO_PATH, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0444);
        assert_int_equal(st.st_size, 5);
        assert_int_equal(blobstore_has("root", HELLO), 1);
        assert_int_equal(tmp_entries(), 0);

        assert_int_equal(put(NULL, "hello", hex, &size), 0);
        assert_int_equal(tmp_entries(), 0);
}

/* Written for a name: the bytes must hash to it. */
static void test_write_named(void **state) {
        char hex[65] = "";
        (void) state;

        assert_int_equal(put(HELLO, "hullo", hex, NULL), -EBADMSG);
        assert_string_equal(hex, "");
        assert_int_equal(blobstore_has("root", HELLO), 0);
        assert_int_equal(tmp_entries(), 0);

        assert_int_equal(put("2cf24dba", "hello", NULL, NULL), -EINVAL);
        assert_int_equal(put(HELLO, "hello", hex, NULL), 1);
        assert_string_equal(hex, HELLO);

        /* Stored: only hashed, still checked. */
        assert_int_equal(put(HELLO, "hello", NULL, NULL), 0);
        assert_int_equal(put(HELLO, "jello", NULL, NULL), -EBADMSG);
        assert_int_equal(blobstore_has("root", HELLO), 1);
        assert_int_equal(tmp_entries(), 0);
}

/* A blob that was there when the write began, gone before its end (the
 * server collected it meanwhile): nothing was written, so it is not
 * there. */
static void test_write_vanished(void **state) {
        BlobstoreWriter *w = NULL;
        (void) state;

        assert_int_equal(put(NULL, "hello", NULL, NULL), 1);
        assert_int_equal(blobstore_writer_new("root", HELLO, &w), 0);
        assert_int_equal(blobstore_writer_write(w, "hello", 5), 0);
        assert_int_equal(unlink(HELLO_PATH), 0);
        assert_int_equal(blobstore_writer_commit(w, NULL, NULL), -ENOENT);
        assert_int_equal(blobstore_has("root", HELLO), 0);
}

/* An unfinished blob leaves nothing behind; a store without tmp/ is an
 * error of its own, not a blob. */
static void test_abandon(void **state) {
        BlobstoreWriter *w = NULL;
        (void) state;

        assert_int_equal(blobstore_writer_new("root", NULL, &w), 0);
        assert_int_equal(blobstore_writer_write(w, "hel", 3), 0);
        assert_int_equal(tmp_entries(), 1);
        assert_null(blobstore_writer_free(w));
        assert_int_equal(tmp_entries(), 0);
        assert_null(blobstore_writer_free(NULL));

        assert_int_equal(blobstore_writer_new("nowhere", NULL, &w), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_paths, setup_root, test_dir_teardown),
                cmocka_unit_test_setup_teardown(test_write_unnamed, setup_root, test_dir_teardown),
                cmocka_unit_test_setup_teardown(test_write_named, setup_root, test_dir_teardown),
                cmocka_unit_test_setup_teardown(test_write_vanished, setup_root, test_dir_teardown),
                cmocka_unit_test_setup_teardown(test_abandon, setup_root, test_dir_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
