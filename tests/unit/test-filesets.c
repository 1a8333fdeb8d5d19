/* Host file sets (filesets.c, store-files.c) on both drivers: the
 * canonical form and its digest, the checks of a set, versions and
 * history, rendering per host by labels, and the errors that name the file
 * and the variable. */
#include <errno.h>
#include <string.h>

#include "tests.h"

#include "filesets.h"
#include "hostfiles.h"
#include "json.h"
#include "pgserver.h"
#include "store-files.h"
#include "store-hosts.h"
#include "util.h"

static StoreTx *begin(StoreDb *db, StoreTxMode kind) {
        StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, kind, &tx), 0);
        return tx;
}

/* The canonical form of the set in JSON text s; the digest into digest. */
static char *canonical(const char *s, char digest[65], int expect, const char *message) {
        _cleanup_json_ json_t *j = json_loads(s, 0, NULL);
        _cleanup_error_ Error e = {};
        char *text = NULL;

        assert_non_null(j);
        assert_int_equal(file_set_canonical(j, &text, digest, &e), expect);
        if (message) {
                assert_non_null(e.message);
                if (!strstr(e.message, message))
                        fail_msg("'%s' does not hold '%s'", e.message, message);
        }
        return text;
}

static void test_canonical(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        char da[65], db[65];
        (void) state;

        /* Order of files and members, a default mode and owner: one form. */
        a = canonical("{\"files\": [{\"path\": \"/etc/b\", \"content\": \"x\"},"
                      " {\"content\": \"{{label.rack}}\", \"path\": \"/etc/a\", \"mode\": \"600\"}],"
                      " \"selector\": {\"rack\": \"r1\"}}",
                      da, 0, NULL);
        b = canonical("{\"selector\": {\"rack\": \"r1\"}, \"files\": [{\"path\": \"/etc/a\", \"mode\": \"0600\","
                      " \"owner\": \"0:0\", \"content\": \"{{label.rack}}\"}, {\"path\": \"/etc/b\", \"content\": \"x\","
                      " \"mode\": \"0644\"}]}",
                      db, 0, NULL);
        assert_string_equal(a, b);
        assert_string_equal(da, db);
        assert_string_equal(a, "{\"files\":[{\"content\":\"{{label.rack}}\",\"mode\":\"0600\",\"owner\":\"0:0\","
                               "\"path\":\"/etc/a\"},{\"content\":\"x\",\"mode\":\"0644\",\"owner\":\"0:0\","
                               "\"path\":\"/etc/b\"}],\"selector\":{\"rack\":\"r1\"}}");

        /* Refusals name what is wrong. */
        canonical("{\"files\": [{\"path\": \"etc/a\", \"content\": \"\"}]}", da, -EINVAL, "'files[0].path'");
        canonical("{\"files\": [{\"path\": \"/etc/../a\", \"content\": \"\"}]}", da, -EINVAL, "'files[0].path'");
        canonical("{\"files\": [{\"path\": \"/etc/a/\", \"content\": \"\"}]}", da, -EINVAL, "'files[0].path'");
        canonical("{\"files\": [{\"path\": \"/etc//a\", \"content\": \"\"}]}", da, -EINVAL, "'files[0].path'");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"\", \"mode\": \"4755\"}]}", da, -EINVAL,
                  "file '/etc/a': 'mode'");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"\", \"owner\": \"root\"}]}", da, -EINVAL,
                  "file '/etc/a': 'owner'");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"\"}, {\"path\": \"/etc/a\", \"content\": \"\"}]}",
                  da, -EINVAL, "file '/etc/a' is given twice");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"\", \"uid\": 0}]}", da, -EINVAL,
                  "unknown member 'uid'");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"a {{ host.ip }}\"}]}", da, -EINVAL,
                  "file '/etc/a': 'host.ip' is not a variable");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"a {{ host.id\"}]}", da, -EINVAL,
                  "file '/etc/a': '{{' without '}}'");
        canonical("{\"files\": [{\"path\": \"/etc/a\", \"content\": \"{{label.r/k}}\"}]}", da, -EINVAL,
                  "not a variable");
        canonical("{\"selector\": {\"rack\": 1}, \"files\": []}", da, -EINVAL, "'selector'");
        canonical("{\"selector\": {}}", da, -EINVAL, "'files'");
}

static void test_render(void **state) {
        HostLabel labels[] = { { (char *) "rack", (char *) "r1" }, { (char *) "role", (char *) "web" } };
        Host h = { .id = "h-0123456789ab", .hostname = (char *) "web1", .mac = (char *) "52:54:00:00:00:01",
                   .labels = labels, .n_labels = ELEMENTSOF(labels) };
        _cleanup_free_ char *out = NULL, *none = NULL;
        _cleanup_error_ Error e = {};
        (void) state;

        assert_int_equal(file_render("/etc/x",
                                     "{{host.id}} {{ host.name }} {{host.mac}} {{label.rack}}/{{label.role}} "
                                     "{{\"{{\"}}x}}\n",
                                     &h, &out, &e),
                         0);
        assert_string_equal(out, "h-0123456789ab web1 52:54:00:00:00:01 r1/web {{x}}\n");
        /* A label the host lacks: an error naming the file and the variable,
         * never an empty string. */
        assert_int_equal(file_render("/etc/y", "a{{label.zone}}b", &h, &none, &e), -ENOENT);
        assert_null(none);
        assert_string_equal(e.message, "file '/etc/y': host 'h-0123456789ab' has no value for 'label.zone'");
        error_clear(&e);
        h.hostname = NULL;
        assert_int_equal(file_render("/etc/z", "{{host.name}}", &h, &none, &e), -ENOENT);
        assert_string_equal(e.message, "file '/etc/z': host 'h-0123456789ab' has no value for 'host.name'");
}

static void put_set(StoreTx *tx, const char *name, const char *json, int expect, int64_t expect_seq) {
        _cleanup_free_ char *spec = NULL;
        char digest[65];
        int64_t seq = -1;

        spec = canonical(json, digest, 0, NULL);
        assert_int_equal(store_file_set_put(tx, name, digest, spec, "ci", 1000 + expect_seq, &seq), expect);
        assert_int_equal(seq, expect_seq);
        /* Live at once, as a change without a rollout is. */
        assert_int_equal(store_file_set_live_set(tx, name, seq), 0);
}

static void test_versions(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
        _cleanup_(file_set_row_release) FileSetRow row = {};
        FileSetRow *rows = NULL;
        size_t n = 0;
        (void) state;

        put_set(tx, "net", "{\"files\": [{\"path\": \"/etc/a\", \"content\": \"1\"}]}", 1, 1);
        /* The same set again: no new version. */
        put_set(tx, "net", "{\"files\": [{\"path\": \"/etc/a\", \"content\": \"1\", \"mode\": \"644\"}]}", 0, 1);
        put_set(tx, "net", "{\"files\": [{\"path\": \"/etc/a\", \"content\": \"2\"}]}", 1, 2);
        put_set(tx, "app", "{\"files\": []}", 1, 1);
        assert_int_equal(store_file_set_get(tx, "net", 0, &row), 0);
        assert_int_equal(row.seq, 2);
        assert_non_null(strstr(row.spec, "\"content\":\"2\""));
        assert_int_equal(row.created, 1002);
        file_set_row_release(&row);
        assert_int_equal(store_file_set_get(tx, "net", 1, &row), 0);
        assert_non_null(strstr(row.spec, "\"content\":\"1\""));
        file_set_row_release(&row);
        assert_int_equal(store_file_set_get(tx, "net", 3, &row), -ENOENT);
        assert_int_equal(store_file_set_get(tx, "nope", 0, &row), -ENOENT);

        assert_int_equal(store_file_set_list(tx, &rows, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(rows[0].name, "app");
        assert_string_equal(rows[1].name, "net");
        assert_int_equal(rows[1].seq, 2);
        file_set_rows_free(rows, n);

        /* A deletion is a version. Held back (the live version is still
         * the last one), the set stays listed, as its deletion; made live,
         * it leaves the list. Its history stays. */
        assert_int_equal(store_file_set_get(tx, "net", 0, &row), 0);
        assert_int_equal(store_file_set_put(tx, "net", row.digest, NULL, "ci", 2000, NULL), 1);
        file_set_row_release(&row);
        assert_int_equal(store_file_set_list(tx, &rows, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(rows[1].seq, 3);
        assert_null(rows[1].spec);
        file_set_rows_free(rows, n);
        assert_int_equal(store_file_set_live_set(tx, "net", 3), 0);
        assert_int_equal(store_file_set_list(tx, &rows, &n), 0);
        assert_int_equal(n, 1);
        file_set_rows_free(rows, n);
        assert_int_equal(store_file_set_history(tx, "net", &rows, &n), 0);
        assert_int_equal(n, 3);
        assert_non_null(rows[0].spec);
        assert_non_null(rows[1].spec);
        assert_null(rows[2].spec);
        assert_string_equal(rows[2].digest, rows[1].digest);
        assert_string_equal(rows[2].actor, "ci");
        file_set_rows_free(rows, n);
        assert_int_equal(store_file_set_history(tx, "nope", &rows, &n), -ENOENT);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_host_files(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_WRITE);
        _cleanup_json_ json_t *j = NULL;
        _cleanup_error_ Error e = {};
        char empty[65], d1[65], d2[65], d3[65];
        (void) state;

        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 1), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000002", "52:54:00:00:00:02", NULL, 1), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "rack", "r1"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000002", "rack", "r2"), 0);

        /* No set: no files, and a digest that says so. */
        assert_int_equal(files_host_render(tx, "h-000000000001", &j, empty, &e), 0);
        assert_int_equal(json_array_size(json_object_get(j, "files")), 0);
        assert_string_equal(json_string_value(json_object_get(j, "digest")), empty);
        json_decref(j);
        j = NULL;

        put_set(tx, "net", "{\"selector\": {\"rack\": \"r1\"}, \"files\": [{\"path\": \"/etc/rack\","
                           " \"content\": \"rack {{label.rack}} on {{host.id}}\\n\"}]}",
                1, 1);
        put_set(tx, "all", "{\"files\": [{\"path\": \"/etc/motd\", \"content\": \"hi\\n\", \"mode\": \"0600\"}]}", 1, 1);
        assert_int_equal(files_host_render(tx, "h-000000000001", &j, d1, &e), 0);
        assert_int_equal(json_array_size(json_object_get(j, "files")), 2);
        json_t *f = json_array_get(json_object_get(j, "files"), 1);
        assert_string_equal(json_string_value(json_object_get(f, "path")), "/etc/rack");
        assert_string_equal(json_string_value(json_object_get(f, "content")), "rack r1 on h-000000000001\n");
        assert_string_equal(json_string_value(json_object_get(f, "set")), "net");
        f = json_array_get(json_object_get(j, "files"), 0);
        assert_string_equal(json_string_value(json_object_get(f, "mode")), "0600");
        json_decref(j);
        j = NULL;
        /* The other rack gets the set for all only. */
        assert_int_equal(files_host_render(tx, "h-000000000002", &j, d2, &e), 0);
        assert_int_equal(json_array_size(json_object_get(j, "files")), 1);
        assert_string_not_equal(d1, d2);
        assert_string_not_equal(d2, empty);
        /* A new label value renders anew; the digest follows. */
        assert_int_equal(store_host_label_set(tx, "h-000000000002", "rack", "r1"), 0);
        assert_int_equal(files_host_render(tx, "h-000000000002", NULL, d3, &e), 0);
        assert_string_not_equal(d3, d1);
        assert_string_not_equal(d3, d2);

        /* Two sets with one path: an error naming both. */
        put_set(tx, "dup", "{\"files\": [{\"path\": \"/etc/motd\", \"content\": \"\"}]}", 1, 1);
        assert_int_equal(files_host_render(tx, "h-000000000001", NULL, d3, &e), -EEXIST);
        assert_string_equal(e.message, "file '/etc/motd' is in sets 'all' and 'dup'");
        error_clear(&e);
        put_set(tx, "dup", "{\"files\": [{\"path\": \"/etc/zone\", \"content\": \"{{label.zone}}\"}]}", 1, 2);
        assert_int_equal(files_host_render(tx, "h-000000000001", NULL, d3, &e), -ENOENT);
        assert_string_equal(e.message, "file '/etc/zone': host 'h-000000000001' has no value for 'label.zone'");
        error_clear(&e);
        assert_int_equal(files_host_render(tx, "h-00000000000f", NULL, d3, &e), -ENOENT);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* What the agent checks of the files it fetched (common/hostfiles.c). */
static void test_check(void **state) {
        _cleanup_json_ json_t *files = json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]", "path", "/etc/b",
                                                 "mode", "0644", "owner", "0:0", "content", "b", "path", "/etc/a",
                                                 "mode", "0600", "owner", "10:20", "content", "a");
        _cleanup_json_ json_t *sorted = json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]", "path", "/etc/a",
                                                  "mode", "0600", "owner", "10:20", "content", "a", "path",
                                                  "/etc/b", "mode", "0644", "owner", "0:0", "content", "b");
        _cleanup_json_ json_t *j = NULL;
        _cleanup_error_ Error e = {};
        char d1[65], d2[65];
        (void) state;

        /* One digest whatever the order and extra members. */
        assert_int_equal(host_files_digest(files, d1), 0);
        json_object_set_new(json_array_get(sorted, 0), "set", json_string("net"));
        assert_int_equal(host_files_digest(sorted, d2), 0);
        assert_string_equal(d1, d2);
        j = json_pack("{s:s, s:O}", "digest", d1, "files", files);
        assert_int_equal(host_files_check(j, &e), 0);
        /* A file changed on the way: its digest is not the one named. */
        json_object_set_new(json_array_get(files, 0), "content", json_string("B"));
        assert_int_equal(host_files_check(j, &e), -EBADMSG);
        assert_non_null(strstr(e.message, "digest"));
        error_clear(&e);
        json_object_set_new(json_array_get(files, 0), "content", json_string("b"));
        json_object_set_new(json_array_get(files, 1), "path", json_string("/etc/../passwd"));
        assert_int_equal(host_files_check(j, &e), -EBADMSG);
        assert_string_equal(e.message, "'files[1].path': not a valid path");
        error_clear(&e);
        json_object_set_new(json_array_get(files, 1), "path", json_string("/etc/b"));
        assert_int_equal(host_files_check(j, &e), -EBADMSG);
        assert_string_equal(e.message, "file '/etc/b' is given twice");
        error_clear(&e);
        json_object_set_new(json_array_get(files, 1), "path", json_string("/etc/a"));
        json_object_set_new(json_array_get(files, 1), "mode", json_string("4755"));
        assert_int_equal(host_files_check(j, &e), -EBADMSG);
        error_clear(&e);
        json_object_set_new(json_array_get(files, 1), "mode", json_string("600"));
        assert_int_equal(host_files_check(j, &e), -EBADMSG);
        assert_string_equal(e.message, "file '/etc/a': 'mode' is not four octal digits");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_canonical),
                test_in_dir(test_render),
                test_in_dir(test_check),
                test_in_dir(test_versions),
                test_in_dir(test_host_files),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_versions),
                cmocka_unit_test(test_host_files),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
