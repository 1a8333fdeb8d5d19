/* Mirrors: mirrorlist and metalink files, the metalink's check of
 * repomd.xml, and fetches that skip failing mirrors (file:// mirrors here;
 * tests/integration/repos.sh has HTTP ones). */
#include <fcntl.h>
#include <openssl/sha.h>

#include "tests.h"

#include "definition.h"
#include "fileio.h"
#include "log.h"
#include "mirrors.h"
#include "util.h"

static void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

/* stderr goes to a file while the function under test logs. */
static int saved_stderr = -1;

static void capture_start(void) {
        fflush(stderr);
        saved_stderr = dup(2);
        assert_non_null(freopen("stderr.txt", "w", stderr));
}

static char *capture_end(void) {
        char *text = NULL;

        fflush(stderr);
        dup2(saved_stderr, 2);
        close(saved_stderr);
        clearerr(stderr);
        assert_int_equal(read_full_file("stderr.txt", 1 << 20, &text, NULL), 0);
        return text;
}

static char *cwd_url(const char *dir) {
        _cleanup_free_ char *cwd = get_current_dir_name();
        return strdup_printf("file://%s/%s", cwd, dir);
}

static void test_mirrorlist(void **state _unused_) {
        _cleanup_strv_free_ char **urls = NULL, **none = NULL;

        assert_int_equal(mirrorlist_parse("# mirrors of BaseOS\n\n  http://a.example/rocky/9/BaseOS/x86_64/os/  \n"
                                          "ftp://old.example/x\r\nhttps://b.example/r\r\n#https://c.example/r\n"
                                          "file:///srv/mirror\nnot a url\n",
                                          &urls),
                         0);
        assert_int_equal(strv_length(urls), 3);
        assert_string_equal(urls[0], "http://a.example/rocky/9/BaseOS/x86_64/os");
        assert_string_equal(urls[1], "https://b.example/r");
        assert_string_equal(urls[2], "file:///srv/mirror");
        assert_int_equal(mirrorlist_parse("# nothing\n\nftp://x/\n", &none), -EBADMSG);
        assert_null(none);
}

#define METALINK_HEAD                                                                                            \
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"                                                             \
        "<metalink version=\"3.0\" xmlns=\"http://www.metalinker.org/\" type=\"dynamic\">\n <files>\n"             \
        "  <file name=\"repomd.xml\">\n   <size>%zu</size>\n   <verification>\n"                                   \
        "    <hash type=\"md5\">00000000000000000000000000000000</hash>\n"                                         \
        "    <hash type=\"sha256\">%s</hash>\n   </verification>\n   <resources maxconnections=\"1\">\n"

static char *metalink_text(const char *repomd, const char *urls) {
        unsigned char bin[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];

        SHA256((const unsigned char *) repomd, strlen(repomd), bin);
        hex_encode(bin, sizeof(bin), hex);
        return strdup_printf(METALINK_HEAD "%s   </resources>\n  </file>\n </files>\n</metalink>\n", strlen(repomd),
                             hex, urls);
}

static void test_metalink(void **state _unused_) {
        static const char repomd[] = "<repomd>the metadata</repomd>\n";
        _cleanup_free_ char *text = metalink_text(
                repomd,
                "    <url protocol=\"http\" type=\"http\" preference=\"50\">http://low.example/r/repodata/repomd.xml</url>\n"
                "    <url protocol=\"https\" type=\"https\" preference=\"100\">https://high.example/r/repodata/repomd.xml</url>\n"
                "    <url protocol=\"rsync\" type=\"rsync\" preference=\"100\">rsync://x.example/r/repodata/repomd.xml</url>\n"
                "    <url protocol=\"https\" type=\"https\" preference=\"100\">https://second.example/r/repodata/repomd.xml</url>\n"
                "    <url protocol=\"http\" type=\"http\">http://nopref.example/r/repodata/repomd.xml</url>\n");
        _cleanup_strv_free_ char **urls = NULL;
        MetalinkRepomd m = {};
        char reason[256] = "";

        assert_int_equal(metalink_parse(text, strlen(text), &urls, &m), 0);
        assert_int_equal(strv_length(urls), 4);
        /* by preference, file order among equals; rsync dropped */
        assert_string_equal(urls[0], "https://high.example/r");
        assert_string_equal(urls[1], "https://second.example/r");
        assert_string_equal(urls[2], "http://low.example/r");
        assert_string_equal(urls[3], "http://nopref.example/r");
        assert_int_equal(m.size, strlen(repomd));
        assert_int_equal(strv_length(m.hash_types), 2);

        /* the md5 given is wrong: every known checksum must match */
        assert_int_equal(metalink_repomd_check(&m, repomd, strlen(repomd), reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "md5"));
        free(m.hash_types[0]);
        m.hash_types[0] = strdup("unknown-hash");
        assert_int_equal(metalink_repomd_check(&m, repomd, strlen(repomd), reason, sizeof(reason)), 0);
        assert_int_equal(metalink_repomd_check(&m, "<repomd>the metadatA</repomd>\n", strlen(repomd), reason,
                                               sizeof(reason)),
                         -EBADMSG);
        assert_non_null(strstr(reason, "sha256"));
        assert_int_equal(metalink_repomd_check(&m, repomd, strlen(repomd) - 1, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "the metalink says"));
        metalink_repomd_release(&m);

        /* not a metalink, no repomd.xml, no usable URL, no checksum */
        {
                static const char *const bad[] = {
                        "<html>Not found</html>",
                        "<metalink><files><file name=\"other.xml\"><size>1</size></file></files></metalink>",
                        "<metalink><files><file name=\"repomd.xml\"><verification><hash type=\"sha256\">00</hash>"
                        "</verification><resources><url>ftp://x/repodata/repomd.xml</url></resources></file></files>"
                        "</metalink>",
                        "<metalink><files><file name=\"repomd.xml\"><resources><url>http://x/repodata/repomd.xml"
                        "</url></resources></file></files></metalink>",
                        "<metalink><files>",
                };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        _cleanup_strv_free_ char **u = NULL;
                        MetalinkRepomd b = {};

                        if (metalink_parse(bad[i], strlen(bad[i]), &u, &b) != -EBADMSG)
                                fail_msg("metalink %zu was not refused", i);
                        assert_null(u);
                }
        }
}

static int check_content(const char *url, const char *data, size_t size, void *userdata, char *reason,
                         size_t reason_size) {
        (void) url;
        (void) userdata;
        if (size != 5 || memcmp(data, "good\n", 5) != 0) {
                snprintf(reason, reason_size, "wrong content");
                return -EBADMSG;
        }
        return 0;
}

/* Mirrors from a RepoDef: baseurls first, then the mirrorlist's; failing
 * mirrors are skipped with one warning each and not asked again. */
static void test_failover(void **state _unused_) {
        _cleanup_free_ char *gone = cwd_url("gone"), *bad = cwd_url("bad"), *good = cwd_url("good"),
                            *list = cwd_url("mirrorlist.txt"), *text = NULL, *log = NULL, *data = NULL;
        _cleanup_mirrors_free_ Mirrors *m = NULL;
        char *baseurls[] = { gone, bad, NULL };
        RepoDef def = { .id = (char *) "base", .baseurls = baseurls, .baseurl = gone };
        size_t size = 0, mirror = 99;

        assert_int_equal(mkdir_p("bad/repodata", 0755), 0);
        assert_int_equal(mkdir_p("good/repodata", 0755), 0);
        write_text("bad/repodata/repomd.xml", "evil\n");
        write_text("good/repodata/repomd.xml", "good\n");
        write_text("good/repodata/other.xml", "good\n");
        text = strdup_printf("# list\n%s\n%s/\n", bad, good);
        write_text("mirrorlist.txt", text);
        def.mirrorlist = list;

        assert_int_equal(mirrors_load(&def, &m), 0);
        /* bad is listed twice: once is enough */
        assert_int_equal(mirrors_count(m), 3);
        assert_string_equal(mirrors_urls(m)[2], good);

        capture_start();
        assert_int_equal(mirrors_fetch_memory(m, "repodata/repomd.xml", 1024, check_content, NULL, &data, &size,
                                              &mirror),
                         0);
        free(TAKE_PTR(data));
        assert_int_equal(mirrors_fetch_memory(m, "repodata/other.xml", 1024, check_content, NULL, &data, &size,
                                              NULL),
                         0);
        log = capture_end();
        assert_int_equal(mirror, 2);
        assert_int_equal(size, 5);
        assert_non_null(mirrors_failed(m, 0));
        assert_non_null(mirrors_failed(m, 1));
        assert_null(mirrors_failed(m, 2));
        /* one warning each, with the mirror and the reason */
        {
                _cleanup_free_ char *w1 = strdup_printf("repository 'base': skipping mirror %s (repodata/repomd.xml: "
                                                        "not found",
                                                        gone),
                                    *w2 = strdup_printf("repository 'base': skipping mirror %s (repodata/repomd.xml: "
                                                        "wrong content)",
                                                        bad);
                const char *p;

                assert_non_null(strstr(log, w1));
                assert_non_null(strstr(log, w2));
                p = strstr(log, "skipping mirror");
                assert_non_null(p = strstr(p + 1, "skipping mirror"));
                assert_null(strstr(p + 1, "skipping mirror"));
        }
        free(TAKE_PTR(log));

        /* a later Mirrors of the same process (the package downloads) skips
         * what failed here, without a second warning; not when that would
         * leave it no mirror */
        {
                _cleanup_mirrors_free_ Mirrors *later = NULL, *none_left = NULL;
                char *urls[] = { gone, good, bad, NULL }, *failed[] = { bad, gone, NULL };

                assert_int_equal(mirrors_new("base", urls, 0, 0, &later), 0);
                capture_start();
                assert_int_equal(mirrors_skip_failed_before(later), 2);
                free(TAKE_PTR(log));
                log = capture_end();
                assert_null(strstr(log, "skipping mirror"));
                assert_true(startswith(mirrors_failed(later, 0), "not found"));
                assert_null(mirrors_failed(later, 1));
                assert_string_equal(mirrors_failed(later, 2), "wrong content");
                assert_int_equal(mirrors_new("base", failed, 0, 0, &none_left), 0);
                assert_int_equal(mirrors_skip_failed_before(none_left), 0);
                assert_null(mirrors_failed(none_left, 0));
                assert_null(mirrors_failed(none_left, 1));
        }
        free(TAKE_PTR(log));

        /* the good one fails too: one error with every mirror's reason */
        capture_start();
        assert_int_equal(mirrors_fetch_memory(m, "repodata/missing.xml", 1024, NULL, NULL, &data, &size, NULL),
                         -ENOENT);
        log = capture_end();
        assert_non_null(strstr(log, "repository 'base': no mirror could serve repodata/missing.xml: "));
        assert_non_null(strstr(log, "wrong content"));
        assert_non_null(strstr(log, good));

        /* into a file: the last attempt's bytes only */
        mirrors_free(TAKE_PTR(m));
        {
                char *urls[] = { bad, good, NULL };
                _cleanup_close_ int fd = open("out", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                _cleanup_free_ char *got = NULL;

                assert_int_equal(mirrors_new("base", urls, 0, 0, &m), 0);
                assert_true(fd >= 0);
                capture_start();
                assert_int_equal(mirrors_fetch_fd(m, "repodata/repomd.xml", fd, 1024, NULL, NULL, &mirror), 0);
                free(capture_end());
                assert_int_equal(mirror, 0);
                write_text("bad/repodata/repomd.xml", "a longer evil text\n");
                mirrors_mark_failed(m, 0, "test", -EBADMSG, "marked by hand");
                assert_int_equal(mirrors_fetch_fd(m, "repodata/repomd.xml", fd, 1024, NULL, NULL, &mirror), 0);
                assert_int_equal(mirror, 1);
                assert_int_equal(read_full_file("out", 1024, &got, &size), 0);
                assert_string_equal(got, "good\n");
        }
}

/* A mirrorlist that cannot be fetched or lists nothing usable is an error
 * naming the repository. */
static void test_list_errors(void **state _unused_) {
        _cleanup_free_ char *list = cwd_url("list.txt"), *missing = cwd_url("none.txt"), *log = NULL;
        Mirrors *m = NULL;
        RepoDef def = { .id = (char *) "epel", .mirrorlist = missing };

        capture_start();
        assert_int_equal(mirrors_load(&def, &m), -ENOENT);
        write_text("list.txt", "# empty\n");
        def.mirrorlist = list;
        assert_int_equal(mirrors_load(&def, &m), -EBADMSG);
        def.mirrorlist = NULL;
        def.metalink = list;
        write_text("list.txt", "<metalink><files/></metalink>");
        assert_int_equal(mirrors_load(&def, &m), -EBADMSG);
        log = capture_end();
        assert_null(m);
        assert_non_null(strstr(log, "repository 'epel': cannot fetch its mirrorlist"));
        assert_non_null(strstr(log, "repository 'epel': mirrorlist"));
        assert_non_null(strstr(log, "lists no file://, http:// or https:// URL"));
        assert_non_null(strstr(log, "is not a metalink that lists repomd.xml"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_mirrorlist),
                test_in_dir(test_metalink),
                test_in_dir(test_failover),
                test_in_dir(test_list_errors),
        };

        log_set_level(LOG_LEVEL_WARNING);
        return cmocka_run_group_tests_name("mirrors", tests, NULL, NULL);
}
