#include "tests.h"

#include "manifest.h"
#include "util.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static Manifest *sample(void) {
        Manifest *m = manifest_new();
        assert_non_null(m);
        m->name = strdup("tiny");
        m->version = strdup("1.0");
        m->arch = strdup("x86_64");
        m->cmdline = strdup("console=ttyS0");
        m->kernel_version = strdup("6.1.0-1-amd64");
        m->build_time = 1700000000;
        m->root_size = 128 << 20;
        m->lock = json_pack("{s:i, s:[]}", "format", 1, "packages");
        assert_int_equal(manifest_add_artifact(m, "rootfs", SHA_A, 1234, "erofs"), 0);
        assert_int_equal(manifest_add_artifact(m, "kernel", SHA_B, 99, NULL), 0);
        return m;
}

static void test_roundtrip(void **state) {
        _cleanup_manifest_free_ Manifest *m = sample(), *p = NULL;
        _cleanup_free_ char *bytes = NULL, *bytes2 = NULL;
        size_t n, n2;
        char id[65], id2[65], err[256];
        (void) state;

        assert_int_equal(manifest_to_bytes(m, &bytes, &n), 0);
        assert_int_equal(bytes[n - 1], '\n');
        assert_int_equal(manifest_parse(bytes, n, &p, err, sizeof(err)), 0);
        assert_string_equal(p->name, "tiny");
        assert_int_equal(p->build_time, 1700000000);
        assert_int_equal(p->n_artifacts, 2);
        assert_string_equal(manifest_find_artifact(p, "rootfs")->fstype, "erofs");
        assert_null(manifest_find_artifact(p, "kernel")->fstype);
        assert_null(manifest_find_artifact(p, "disk"));
        assert_non_null(p->lock);

        /* Serializing the parsed manifest gives the same bytes, so the same ID. */
        assert_int_equal(manifest_to_bytes(p, &bytes2, &n2), 0);
        assert_int_equal(n, n2);
        assert_memory_equal(bytes, bytes2, n);
        manifest_id(bytes, n, id);
        manifest_id(bytes2, n2, id2);
        assert_string_equal(id, id2);
}

static void expect_bad(const char *json, const char *fragment) {
        Manifest *m = NULL;
        char err[256] = "";
        assert_int_equal(manifest_parse(json, strlen(json), &m, err, sizeof(err)), -EBADMSG);
        assert_null(m);
        if (!strstr(err, fragment))
                fail_msg("error '%s' does not mention '%s'", err, fragment);
}

static void test_rejects(void **state) {
        (void) state;
        expect_bad("[1]", "not a JSON object");
        expect_bad("{", "invalid JSON");
        expect_bad("{\"format\": 2}", "format 2");
        expect_bad("{\"format\": 1, \"nope\": 1}", "unknown member 'nope'");
        expect_bad("{\"format\": 1, \"version\": \"1\", \"arch\": \"x\"}", "'name' is missing");
        expect_bad("{\"format\": 1, \"name\": \"../x\", \"version\": \"1\", \"arch\": \"x\"}", "invalid name");
        expect_bad("{\"format\": 1, \"name\": \"t\", \"version\": \"1\", \"arch\": \"x\", \"build_time\": -1, "
                   "\"root_size\": 1, \"artifacts\": []}",
                   "build_time");
        expect_bad("{\"format\": 1, \"name\": \"t\", \"version\": \"1\", \"arch\": \"x\", \"build_time\": 1, "
                   "\"root_size\": 1, \"artifacts\": [{\"type\": \"rootfs\", \"sha256\": \"abc\", \"size\": 1}]}",
                   "invalid sha256");
        expect_bad("{\"format\": 1, \"name\": \"t\", \"version\": \"1\", \"arch\": \"x\", \"build_time\": 1, "
                   "\"root_size\": 1, \"artifacts\": [{\"type\": \"k\", \"sha256\": \"" SHA_A "\", \"size\": 1},"
                   "{\"type\": \"k\", \"sha256\": \"" SHA_B "\", \"size\": 1}]}",
                   "listed twice");
        expect_bad("{\"format\": 1, \"format\": 1}", "invalid JSON");
        /* A version the agent could not tell from a boot counter. */
        expect_bad("{\"format\": 1, \"name\": \"t\", \"version\": \"1.0+1\", \"arch\": \"x\"}",
                   "invalid version '1.0+1' (a version is 1 to 64 ASCII letters, digits and . _ - ~ ^");
}

/* The tools and boot members: kept as they were written, byte for byte, and
 * checked for their shape. */
static void test_tools_and_boot(void **state) {
        _cleanup_manifest_free_ Manifest *m = sample(), *p = NULL;
        _cleanup_free_ char *bytes = NULL, *bytes2 = NULL;
        char err[256] = "";
        size_t n, n2;
        (void) state;

        m->tools = json_pack("{s:s, s:s}", "mkfs.erofs", "1.5", "libguestfs", "1.48.6");
        m->boot = json_pack("{s:{s:s, s:s, s:s, s:s}}", "systemd-boot", "path",
                            "/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "sha256", SHA_A, "source", "package",
                            "package", "systemd-boot-efi-252.39-1.x86_64");
        assert_int_equal(manifest_to_bytes(m, &bytes, &n), 0);
        assert_non_null(strstr(bytes, "\"tools\": {"));
        assert_int_equal(manifest_parse(bytes, n, &p, err, sizeof(err)), 0);
        assert_string_equal(json_string_value(json_object_get(p->tools, "mkfs.erofs")), "1.5");
        assert_string_equal(json_string_value(json_object_get(json_object_get(p->boot, "systemd-boot"), "source")),
                            "package");
        assert_int_equal(manifest_to_bytes(p, &bytes2, &n2), 0);
        assert_int_equal(n, n2);
        assert_memory_equal(bytes, bytes2, n);
        /* older images have no loader: systemd-boot, UEFI */
        assert_null(p->loader);
        assert_null(p->firmware);
        manifest_free(TAKE_PTR(p));
        free(TAKE_PTR(bytes));
        m->loader = strdup("grub");
        m->firmware = strdup("both");
        assert_int_equal(manifest_to_bytes(m, &bytes, &n), 0);
        assert_int_equal(manifest_parse(bytes, n, &p, err, sizeof(err)), 0);
        assert_string_equal(p->loader, "grub");
        assert_string_equal(p->firmware, "both");

#define HEAD "{\"format\": 1, \"name\": \"t\", \"version\": \"1\", \"arch\": \"x\", \"build_time\": 1, " \
             "\"root_size\": 1, \"artifacts\": [], "
        expect_bad(HEAD "\"tools\": [1]}", "'tools' is not an object");
        expect_bad(HEAD "\"tools\": {\"mke2fs\": 1}}", "tool 'mke2fs' is not a string");
        expect_bad(HEAD "\"boot\": {\"shim\": {\"path\": \"/x\"}}}", "boot file 'shim' is not an object of 4");
        expect_bad(HEAD "\"boot\": {\"shim\": {\"path\": \"/x\", \"sha256\": \"" SHA_A "\", \"source\": \"elsewhere\", "
                        "\"package\": \"p\"}}}",
                   "source 'elsewhere'");
        expect_bad(HEAD "\"boot\": {\"shim\": {\"path\": \"/x\", \"sha256\": \"abc\", \"source\": \"package\", "
                        "\"package\": \"p\"}}}",
                   "invalid sha256");
        expect_bad(HEAD "\"loader\": \"lilo\"}", "unknown loader 'lilo'");
        expect_bad(HEAD "\"loader\": 1}", "'loader' is not a string");
        expect_bad(HEAD "\"firmware\": \"efi\"}", "unknown firmware 'efi'");
#undef HEAD
}

/* The one rule for image versions that builder, server and agent share. */
static void test_version_rule(void **state) {
        static const char *const good[] = {
                "1.0", "2", "2024.05-1~rc2^p1_x", "_1", "~rc1", "1.0-rc.1", "A.b",
                "1234567890123456789012345678901234567890123456789012345678901234", /* 64 */
        };
        static const char *const bad[] = {
                "", "1.0+1", "1.0+3-1", "+1", ".1", "..", "-1", "1/0", "1 0", "1:0", "1,0", "1.0\n", "1.\xc3\xa9",
                "12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                if (!image_version_valid(good[i]))
                        fail_msg("'%s' should be a valid version", good[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (image_version_valid(bad[i]))
                        fail_msg("'%s' should not be a valid version", bad[i]);
        assert_false(image_version_valid(NULL));

        /* Names keep '+' (nothing parses a name back from a file name), not '^'. */
        assert_true(image_name_valid("tiny+debug"));
        assert_false(image_name_valid("tiny^1"));
        assert_false(image_name_valid("../x"));
        assert_false(image_name_valid(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_roundtrip),
                test_in_dir(test_rejects),
                test_in_dir(test_version_rule),
                test_in_dir(test_tools_and_boot),
        };
        return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
