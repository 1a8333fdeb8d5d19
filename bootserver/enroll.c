#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "enroll.h"
#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "tokens.h"
#include "util.h"
#include "store-sqlite.h"

int enroll_client_address(struct MHD_Connection *conn, char ret[ENROLL_ADDRESS_MAX]) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        const char *p = NULL;

        if (!sa)
                return -ENOTCONN;
        if (sa->sa_family == AF_INET) {
                struct sockaddr_in in;
                memcpy(&in, sa, sizeof in);
                p = inet_ntop(AF_INET, &in.sin_addr, ret, ENROLL_ADDRESS_MAX);
        } else if (sa->sa_family == AF_INET6) {
                struct sockaddr_in6 in6;
                memcpy(&in6, sa, sizeof in6);
                if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
                        p = inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], ret, ENROLL_ADDRESS_MAX);
                else
                        p = inet_ntop(AF_INET6, &in6.sin6_addr, ret, ENROLL_ADDRESS_MAX);
        } else
                return -EAFNOSUPPORT;
        return p ? 0 : negative_errno();
}

int enroll_key(const char *state_dir, char ret[65]) {
        _cleanup_free_ char *path = path_join(state_dir, "enroll.key"), *data = NULL;
        char key[65];
        size_t n = 0;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 256, &data, &n);
        if (r == -ENOENT) {
                char line[66];
                r = token_random_hex(key);
                if (r < 0)
                        return r;
                snprintf(line, sizeof line, "%s\n", key);
                r = write_file_atomic(path, line, 65, 0600);
                if (r < 0)
                        return log_error_errno(r, "cannot write the enrollment key '%s': %m", path);
                log_info("made a new enrollment key '%s'", path);
                memcpy(ret, key, sizeof key);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "cannot read the enrollment key '%s': %m", path);
        if (n > 0 && data[n - 1] == '\n')
                data[--n] = 0;
        if (!sha256_hex_valid(data))
                return log_error_errno(-EBADMSG, "the enrollment key '%s' is not 64 lowercase hex digits", path);
        memcpy(ret, data, 65);
        return 0;
}

void enroll_derive(const char *key, const char *host, const char *mac, const char *address, const char *nonce,
                   char ret[65]) {
        unsigned char mac_out[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        char msg[256];
        int n;

        /* None of the parts can hold a newline: IDs, MACs, numeric
         * addresses and hex nonces; the message reads only one way. */
        n = snprintf(msg, sizeof msg, "slipway-enroll\n%s\n%s\n%s\n%s", host, mac, address, nonce);
        assert(n > 0 && (size_t) n < sizeof msg);
        HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) msg, (size_t) n, mac_out, &len);
        assert(len == SHA256_DIGEST_SIZE);
        hex_encode(mac_out, SHA256_DIGEST_SIZE, ret);
}

/* Host's outstanding secret: its nonce, address and expiry. Returns 1 when
 * the row has one (ret_nonce and ret_address caller-owned), 0 when not. */
static int outstanding(sqlite3_stmt *st, int col, char **ret_nonce, char **ret_address, uint64_t *ret_expires) {
        if (sqlite3_column_type(st, col) == SQLITE_NULL || sqlite3_column_type(st, col + 1) == SQLITE_NULL)
                return 0;
        *ret_nonce = db_column_strdup(st, col);
        *ret_address = db_column_strdup(st, col + 1);
        *ret_expires = (uint64_t) sqlite3_column_int64(st, col + 2);
        return *ret_nonce && *ret_address ? 1 : -ENOMEM;
}

int enroll_issue(StoreTx *tx, const char *state_dir, const char *host, const char *mac, const char *address,
                 uint64_t ttl, uint64_t now, char ret_secret[65]) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *up = NULL;
        _cleanup_free_ char *nonce = NULL, *held_by = NULL;
        char key[65], fresh[65];
        uint64_t expires = 0;
        json_t *detail;
        int r;

        r = db_prepare(db, "SELECT enroll_nonce, enroll_address, enroll_expires FROM hosts WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = outstanding(st, 0, &nonce, &held_by, &expires);
        if (r < 0)
                return r;
        if (r > 0 && expires >= now) {
                if (!streq(held_by, address)) {
                        /* Another client asked while the install boot's secret is
                         * valid: it gets none, and the old one stays good. */
                        detail = json_pack("{s:s, s:s, s:I}", "address", address, "issued_to", held_by, "expires",
                                           (json_int_t) expires);
                        r = audit_log(tx, "pxe", "enroll.refuse", host, detail);
                        json_decref(detail);
                        if (r < 0)
                                return r;
                        log_warning("ipxe: %s (%s) asked from %s for the install secret issued to %s: refused", host,
                                    mac, address, held_by);
                        return ENROLL_HELD;
                }
                r = enroll_key(state_dir, key);
                if (r < 0)
                        return r;
                enroll_derive(key, host, mac, address, nonce, ret_secret);
                return ENROLL_AGAIN;
        }

        r = token_random_hex(fresh);
        if (r >= 0)
                r = enroll_key(state_dir, key);
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE hosts SET enroll_nonce = ?, enroll_address = ?, enroll_expires = ? WHERE id = ?",
                               &up);
        if (r < 0)
                return r;
        expires = now + ttl;
        sqlite3_bind_text(up, 1, fresh, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, address, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 3, (sqlite3_int64) expires);
        sqlite3_bind_text(up, 4, host, -1, SQLITE_STATIC);
        r = db_errno(sqlite3_step(up));
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:I}", "address", address, "expires", (json_int_t) expires);
        r = audit_log(tx, "pxe", "enroll.issue", host, detail);
        json_decref(detail);
        if (r < 0)
                return r;
        enroll_derive(key, host, mac, address, fresh, ret_secret);
        return ENROLL_NEW;
}

int enroll_check(StoreTx *tx, const char *state_dir, const char *mac, const char *address, const char *secret,
                 uint64_t now, char **ret_why) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *nonce = NULL, *held_by = NULL, *host = NULL;
        char key[65], want[65];
        uint64_t expires = 0;
        int r;

        r = db_prepare(db, "SELECT id, enroll_nonce, enroll_address, enroll_expires FROM hosts WHERE mac = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_why = strdup_printf("no host has the MAC %s", mac);
                return 0;
        }
        host = db_column_strdup(st, 0);
        if (!host)
                return -ENOMEM;
        r = outstanding(st, 1, &nonce, &held_by, &expires);
        if (r < 0)
                return r;
        if (r == 0)
                *ret_why = strdup_printf("%s has no install secret outstanding (never issued, used, or revoked)", host);
        else if (expires < now)
                *ret_why = strdup_printf("the install secret of %s expired", host);
        else if (!streq(held_by, address))
                *ret_why = strdup_printf("the install secret of %s was issued to %s, not to %s", host, held_by, address);
        else {
                r = enroll_key(state_dir, key);
                if (r < 0)
                        return r;
                enroll_derive(key, host, mac, held_by, nonce, want);
                if (strlen(secret) == 64 && CRYPTO_memcmp(secret, want, 64) == 0)
                        return 1;
                *ret_why = strdup_printf("not the install secret of %s", host);
        }
        return *ret_why ? 0 : -ENOMEM;
}

int enroll_revoke(StoreTx *tx, const char *host) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        int r = db_prepare(db,
                           "UPDATE hosts SET enroll_nonce = NULL, enroll_address = NULL, enroll_expires = NULL WHERE id = ?",
                           &up);

        if (r < 0)
                return r;
        sqlite3_bind_text(up, 1, host, -1, SQLITE_STATIC);
        return db_errno(sqlite3_step(up));
}
