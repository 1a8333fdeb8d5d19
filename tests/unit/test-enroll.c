/* Install secrets: the key file, the derivation, and one secret per install
 * bound to the address that fetched it (issued once, the same again to that
 * address, refused to another, good only from it, until used, revoked or
 * expired). */
#include <sys/stat.h>

#include "tests.h"

#include "store-sqlite.h"
#include "enroll.h"
#include "fileio.h"
#include "util.h"

#define HOST "h-0123456789ab"
#define MAC "52:54:00:12:34:56"
#define A "10.0.0.5"
#define B "10.0.0.6"
#define NOW 1800000000u
#define TTL 600u

static void test_key(void **state) {
        char k1[65], k2[65];
        struct stat st;
        (void) state;

        assert_int_equal(enroll_key(".", k1), 0);
        assert_true(sha256_hex_valid(k1));
        assert_int_equal(stat("enroll.key", &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(enroll_key(".", k2), 0);
        assert_string_equal(k1, k2);
        assert_int_equal(write_file_atomic("enroll.key", "not a key\n", 10, 0600), 0);
        assert_int_equal(enroll_key(".", k2), -EBADMSG);
}

static void test_derive(void **state) {
        const char *key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        const char *nonce = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
        char s[65], t[65];
        (void) state;

        enroll_derive(key, HOST, MAC, A, nonce, s);
        assert_true(sha256_hex_valid(s));
        enroll_derive(key, HOST, MAC, A, nonce, t);
        assert_string_equal(s, t);
        /* Every part counts. */
        enroll_derive(key, HOST, MAC, B, nonce, t);
        assert_string_not_equal(s, t);
        enroll_derive(key, "h-0123456789ac", MAC, A, nonce, t);
        assert_string_not_equal(s, t);
        enroll_derive(key, HOST, "52:54:00:12:34:57", A, nonce, t);
        assert_string_not_equal(s, t);
        enroll_derive(key, HOST, MAC, A, key, t);
        assert_string_not_equal(s, t);
        enroll_derive(nonce, HOST, MAC, A, nonce, t);
        assert_string_not_equal(s, t);
}

static StoreDb *host_db(void) {
        StoreDb *db = NULL;

        assert_int_equal(store_db_open("state.db", &db), 0);
        sqlite3 *s = store_sqlite(db);
        assert_int_equal(sqlite3_exec(s, "INSERT INTO hosts (id, mac, registered) VALUES ('" HOST "', '" MAC "', 0)", NULL,
                                      NULL, NULL),
                         SQLITE_OK);
        return db;
}

static int issue(StoreDb *db, const char *address, uint64_t now, char ret[65]) {
        StoreTx *tx = NULL;
        int r = store_tx_begin(db, STORE_TX_WRITE, &tx);

        if (r >= 0)
                r = enroll_issue(tx, ".", HOST, MAC, address, TTL, now, ret);
        /* A refusal is audited: committed like a new secret. */
        if (r >= 0)
                assert_int_equal(store_tx_commit(&tx), 0);
        else
                store_tx_rollback(&tx);
        return r;
}

static int check(StoreDb *db, const char *address, const char *secret, uint64_t now) {
        _cleanup_free_ char *why = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        r = enroll_check(tx, ".", MAC, address, secret, now, &why);

        assert_true(r != 0 || why);
        return r;
}

static int count_audit(StoreDb *db, const char *action) {
        sqlite3_stmt *st = NULL;
        sqlite3 *s = store_sqlite(db);
        int n = -1;

        assert_int_equal(sqlite_prepare(s, "SELECT count(*) FROM audit WHERE action = ?", &st), 0);
        sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
        if (sqlite_step(st) > 0)
                n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return n;
}

static void test_one_secret_per_install(void **state) {
        _cleanup_store_db_free_ StoreDb *db = host_db();
        char s1[65], s2[65] = "", s3[65];
        (void) state;

        assert_int_equal(issue(db, A, NOW, s1), ENROLL_NEW);
        assert_int_equal(issue(db, A, NOW + 10, s2), ENROLL_AGAIN);
        assert_string_equal(s1, s2);
        /* Another client gets nothing, and the first secret stays good. */
        s2[0] = 0;
        assert_int_equal(issue(db, B, NOW + 20, s2), ENROLL_HELD);
        assert_string_equal(s2, "");
        assert_int_equal(count_audit(db, "enroll.issue"), 1);
        assert_int_equal(count_audit(db, "enroll.refuse"), 1);
        /* Good only from the address it was issued to, and only itself. */
        assert_int_equal(check(db, B, s1, NOW + 30), 0);
        assert_int_equal(check(db, A, "0000000000000000000000000000000000000000000000000000000000000000", NOW + 30), 0);
        assert_int_equal(check(db, A, "short", NOW + 30), 0);
        assert_int_equal(check(db, A, s1, NOW + TTL + 1), 0);
        assert_int_equal(check(db, A, s1, NOW + 30), 1);
        /* Used: it is gone, and the next install boot gets another. */
        StoreTx *tx = NULL;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(enroll_revoke(tx, HOST), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(check(db, A, s1, NOW + 40), 0);
        assert_int_equal(issue(db, A, NOW + 50, s3), ENROLL_NEW);
        assert_string_not_equal(s1, s3);
        /* Expired, the next client to ask gets a new one. */
        assert_int_equal(issue(db, B, NOW + 50 + TTL + 1, s2), ENROLL_NEW);
        assert_int_equal(check(db, B, s2, NOW + 60 + TTL), 1);
        assert_int_equal(check(db, A, s3, NOW + 60 + TTL), 0);
}

static void test_unknown_mac(void **state) {
        _cleanup_store_db_free_ StoreDb *db = host_db();
        _cleanup_free_ char *why = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(enroll_check(tx, ".", "52:54:00:00:00:99", A, "x", NOW, &why), 0);
        assert_non_null(why);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_key),
                test_in_dir(test_derive),
                test_in_dir(test_one_secret_per_install),
                test_in_dir(test_unknown_mac),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
