#include <assert.h>
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
#include "store-hosts.h"

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

int enroll_issue(StoreTx *tx, const char *state_dir, const char *host, const char *mac, const char *address,
                 uint64_t ttl, uint64_t now, char ret_secret[65]) {
        _cleanup_(host_enrollment_release) HostEnrollment e = {};
        char key[65], fresh[65];
        uint64_t expires;
        json_t *detail;
        int r;

        r = store_host_enrollment(tx, host, &e);
        if (r < 0)
                return r;
        if (e.nonce && e.expires >= now) {
                if (!streq(e.address, address)) {
                        /* Another client asked while the install boot's secret is
                         * valid: it gets none, and the old one stays good. */
                        detail = json_pack("{s:s, s:s, s:I}", "address", address, "issued_to", e.address, "expires",
                                           (json_int_t) e.expires);
                        r = audit_log_at(tx, (int64_t) now, "pxe", "enroll.refuse", host, detail);
                        json_decref(detail);
                        if (r < 0)
                                return r;
                        log_warning("ipxe: %s (%s) asked from %s for the install secret issued to %s: refused", host,
                                    mac, address, e.address);
                        return ENROLL_HELD;
                }
                r = enroll_key(state_dir, key);
                if (r < 0)
                        return r;
                enroll_derive(key, host, mac, address, e.nonce, ret_secret);
                return ENROLL_AGAIN;
        }

        r = token_random_hex(fresh);
        if (r >= 0)
                r = enroll_key(state_dir, key);
        if (r < 0)
                return r;
        expires = now + ttl;
        r = store_host_set_enrollment(tx, host, fresh, address, expires);
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:I}", "address", address, "expires", (json_int_t) expires);
        r = audit_log_at(tx, (int64_t) now, "pxe", "enroll.issue", host, detail);
        json_decref(detail);
        if (r < 0)
                return r;
        enroll_derive(key, host, mac, address, fresh, ret_secret);
        return ENROLL_NEW;
}

int enroll_check(StoreTx *tx, const char *state_dir, const char *mac, const char *address, const char *secret,
                 uint64_t now, char **ret_why) {
        _cleanup_(host_enrollment_release) HostEnrollment e = {};
        const char *host;
        char key[65], want[65];
        int r;

        r = store_host_enrollment_by_mac(tx, mac, &e);
        if (r == -ENOENT) {
                *ret_why = strdup_printf("no host has the MAC %s", mac);
                return *ret_why ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        host = e.id;
        if (!e.nonce)
                *ret_why = strdup_printf("%s has no install secret outstanding (never issued, used, or revoked)", host);
        else if (e.expires < now)
                *ret_why = strdup_printf("the install secret of %s expired", host);
        else if (!streq(e.address, address))
                *ret_why = strdup_printf("the install secret of %s was issued to %s, not to %s", host, e.address,
                                         address);
        else {
                r = enroll_key(state_dir, key);
                if (r < 0)
                        return r;
                enroll_derive(key, host, mac, e.address, e.nonce, want);
                if (strlen(secret) == 64 && CRYPTO_memcmp(secret, want, 64) == 0)
                        return 1;
                *ret_why = strdup_printf("not the install secret of %s", host);
        }
        return *ret_why ? 0 : -ENOMEM;
}

int enroll_revoke(StoreTx *tx, const char *host) {
        return store_host_set_enrollment(tx, host, NULL, NULL, 0);
}
