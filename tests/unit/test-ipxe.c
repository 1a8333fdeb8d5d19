/* iPXE scripts: every built-in template rendered with fixed values and
 * compared with its golden file (SLIPWAY_UPDATE_GOLDEN=1 rewrites them),
 * placeholder errors, the MAC/UUID forms the boot URL accepts, and the
 * list of servers a booted host is told of. */
#include "tests.h"

#include "fileio.h"
#include "hosts.h"
#include "ipxe.h"
#include "util.h"

static const IpxeVars vars = {
        .server = "http://10.0.0.1:8080",
        .mac = "52:54:00:12:34:56",
        .uuid = "8c2e8b8e-2d7e-4c1a-9b1e-0a1b2c3d4e5f",
        .host = "h-0123456789ab",
        .image = "e455d2771a9181fc70a03245d855968cd5e99ff351356fcd329cd5b7174a2981",
        .signature = "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7",
        .name = "tiny",
        .version = "2.0",
        .kernel_url = "http://10.0.0.1:8080/blobs/sha256/26f2e57c99338feaf71c46fa4babdc7e1a6c115943002d109fdb746667104f5f",
        .initrd_url = "http://10.0.0.1:8080/blobs/sha256/5c4736f8f0fb6ddfe4b93d0fc4140d5231343f421e40a15e781bc17ecd99afb3",
        .rootfs_url = "http://10.0.0.1:8080/blobs/sha256/81def60d5d44819ab0267baf2b63350103861ad85b1a525001149a3cc9c48992",
        .cmdline = "console=ttyS0 quiet",
        .enroll = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
};

static void test_golden(void **state) {
        (void) state;
        for (IpxeScript s = 0; s < _IPXE_SCRIPT_MAX; s++) {
                _cleanup_free_ char *text = NULL, *path = NULL, *want = NULL;

                assert_int_equal(ipxe_render(ipxe_builtin(s), &vars, &text, NULL), 0);
                path = strdup_printf("%s/tests/unit/golden/ipxe-%s.ipxe", SLIPWAY_SOURCE_DIR, ipxe_script_to_string(s));
                assert_non_null(path);
                if (getenv("SLIPWAY_UPDATE_GOLDEN"))
                        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
                assert_int_equal(read_full_file(path, 65536, &want, NULL), 0);
                if (!streq(text, want))
                        fail_msg("%s differs from its golden file:\n%s", path, text);
                assert_true(startswith(text, "#!ipxe\n"));
        }
}

static void test_placeholders(void **state) {
        _cleanup_free_ char *out = NULL, *bad = NULL;
        (void) state;

        assert_int_equal(ipxe_render("a {{mac}} b {{server}}{{host}}", &vars, &out, NULL), 0);
        assert_string_equal(out, "a 52:54:00:12:34:56 b http://10.0.0.1:8080h-0123456789ab");
        free(out);
        out = NULL;
        /* iPXE's own ${settings} pass through untouched. */
        assert_int_equal(ipxe_render("${net0/mac} {{uuid}}", &(IpxeVars) {}, &out, NULL), 0);
        assert_string_equal(out, "${net0/mac} ");
        assert_int_equal(ipxe_render("kernel {{kernal_url}}", &vars, &out, &bad), -EINVAL);
        assert_string_equal(bad, "{{kernal_url}}");
        free(bad);
        bad = NULL;
        assert_int_equal(ipxe_render("kernel {{kernel_url", &vars, &out, &bad), -EINVAL);
        assert_non_null(bad);
}

/* What slipwayd's configuration check says of a template file, with the line. */
static void test_template_check(void **state) {
        static const struct {
                const char *text;
                unsigned line;
                const char *why; /* NULL: fine */
        } cases[] = {
                { "#!ipxe\nchain {{server}}/boot/ipxe?mac=${mac}\n", 0, NULL },
                { "echo no magic\n", 1, "does not start with #!ipxe" },
                { "", 1, "does not start with #!ipxe" },
                { "#!ipxe\necho {{mac}}\n\nkernel {{kernel}}\n", 4, "unknown placeholder {{kernel}}" },
                { "#!ipxe\necho {{mac}}\necho {{host\n", 3, "'{{' without '}}'" },
        };
        (void) state;

        for (IpxeScript s = 0; s < _IPXE_SCRIPT_MAX; s++) {
                unsigned line = 0;
                char *why = NULL;
                assert_int_equal(ipxe_template_check(ipxe_builtin(s), &line, &why), 0);
                assert_null(why);
        }
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *why = NULL;
                unsigned line = 0;
                int r = ipxe_template_check(cases[i].text, &line, &why);

                if (!cases[i].why) {
                        assert_int_equal(r, 0);
                        continue;
                }
                assert_int_equal(r, -EINVAL);
                assert_int_equal(line, cases[i].line);
                assert_non_null(strstr(why, cases[i].why));
        }
}

static void test_mac_uuid(void **state) {
        char mac[18], uuid[37];
        (void) state;

        assert_int_equal(mac_normalize("52:54:00:AB:cd:EF", mac), 0);
        assert_string_equal(mac, "52:54:00:ab:cd:ef");
        assert_int_equal(mac_normalize("52-54-00-ab-cd-ef", mac), 0);
        assert_string_equal(mac, "52:54:00:ab:cd:ef");
        assert_int_equal(mac_normalize("52:54:00:ab:cd:e", mac), -EINVAL);
        assert_int_equal(mac_normalize("52:54:00:ab:cd:efa", mac), -EINVAL);
        assert_int_equal(mac_normalize("52:54:00:ab:cd;ef", mac), -EINVAL);
        assert_int_equal(mac_normalize("g2:54:00:ab:cd:ef", mac), -EINVAL);
        assert_int_equal(mac_normalize(NULL, mac), -EINVAL);
        assert_int_equal(uuid_normalize("8C2E8B8E-2D7E-4C1A-9B1E-0A1B2C3D4E5F", uuid), 0);
        assert_string_equal(uuid, "8c2e8b8e-2d7e-4c1a-9b1e-0a1b2c3d4e5f");
        assert_int_equal(uuid_normalize("8c2e8b8e2d7e4c1a9b1e0a1b2c3d4e5f", uuid), -EINVAL);
        assert_int_equal(uuid_normalize("8c2e8b8e-2d7e-4c1a-9b1e-0a1b2c3d4e5g", uuid), -EINVAL);
        assert_int_equal(uuid_normalize("../../../../etc/passwd/../../aaaaaa", uuid), -EINVAL);
}

/* The servers of an install script rendered with list as {{servers}}: the
 * value of slipway.server=; caller frees. */
static char *script_servers(const char *list) {
        _cleanup_free_ char *text = NULL;
        IpxeVars v = vars;
        const char *p, *end;

        v.servers = list;
        assert_int_equal(ipxe_render(ipxe_builtin(IPXE_INSTALL), &v, &text, NULL), 0);
        p = strstr(text, " slipway.server=");
        assert_non_null(p);
        p += strlen(" slipway.server=");
        end = strchr(p, ' ');
        assert_non_null(end);
        return strndup(p, (size_t) (end - p));
}

static void test_server_list(void **state) {
        /* The registry: this instance (b) among three live ones and a
         * stale one, by name as the store lists them. */
        Instance reg[] = {
                { .name = (char *) "a", .url = (char *) "http://10.0.0.2:8080", .heartbeat_age = 900 },
                { .name = (char *) "b", .url = (char *) "http://10.0.0.1:8080", .heartbeat_age = 100 },
                { .name = (char *) "c", .url = (char *) "https://c.example:8443", .heartbeat_age = 5000 },
                { .name = (char *) "d", .url = (char *) "http://10.0.0.4:8080", .heartbeat_age = 5001 },
        };
        Instance many[12];
        char urls[12][64];
        _cleanup_free_ char *list = NULL, *shown = NULL, *alone = NULL, *capped = NULL, *odd = NULL;
        (void) state;

        list = ipxe_server_list("http://10.0.0.1:8080", reg, ELEMENTSOF(reg), 5000);
        assert_non_null(list);
        assert_string_equal(list, "http://10.0.0.1:8080,http://10.0.0.2:8080,https://c.example:8443");
        shown = script_servers(list);
        assert_string_equal(shown, list);

        /* A state of its own, or a registry that could not be read: this
         * one alone, and a script rendered without a list names it. */
        alone = ipxe_server_list("http://10.0.0.1:8080", NULL, 0, 5000);
        assert_string_equal(alone, "http://10.0.0.1:8080");
        free(shown);
        shown = script_servers(NULL);
        assert_string_equal(shown, "http://10.0.0.1:8080");

        /* Twelve live instances: eight URLs, this one first. */
        for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                snprintf(urls[i], sizeof urls[i], "http://10.0.1.%zu:8080", i + 1);
                many[i] = (Instance) { .url = urls[i] };
        }
        capped = ipxe_server_list("http://10.0.0.1:8080", many, ELEMENTSOF(many), 5000);
        assert_non_null(capped);
        size_t commas = 0;
        for (const char *p = capped; *p; p++)
                commas += *p == ',';
        assert_int_equal(commas + 1, IPXE_SERVERS_MAX);
        assert_true(startswith(capped, "http://10.0.0.1:8080,http://10.0.1.1:8080,"));
        assert_true(strlen(capped) <= IPXE_SERVERS_LEN_MAX);

        /* A URL that would split the list or the command line stays out. */
        Instance bad[] = {
                { .url = (char *) "http://x:1/a,b" },
                { .url = (char *) "http://x:1/a b" },
                { .url = (char *) "" },
                { .url = (char *) "http://10.0.0.9:8080" },
                { .url = (char *) "http://10.0.0.1:8080/" },
        };
        odd = ipxe_server_list("http://10.0.0.1:8080", bad, ELEMENTSOF(bad), 5000);
        assert_string_equal(odd, "http://10.0.0.1:8080,http://10.0.0.9:8080");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_placeholders),
                cmocka_unit_test(test_template_check),
                cmocka_unit_test(test_mac_uuid),
                cmocka_unit_test(test_server_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
