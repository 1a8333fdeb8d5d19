/* Replays saved inputs through a libFuzzer target without libFuzzer, so that
 * gcc builds can run the corpus in `make check`. Arguments are files or
 * directories of files. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input being replayed, named when it crashes the target. */
static const char *current;
static const int crash_signals[] = { SIGABRT, SIGSEGV, SIGBUS, SIGFPE };

static void on_crash(int sig) {
        static const char what[] = "crashed on input ";

        if (current) {
                (void) !write(STDOUT_FILENO, what, sizeof what - 1);
                (void) !write(STDOUT_FILENO, current, strlen(current));
                (void) !write(STDOUT_FILENO, "\n", 1);
        }
        signal(sig, SIG_DFL);
        raise(sig);
}

static int run_file(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r = read_full_file(path, 16 * 1024 * 1024, &data, &size);
        if (r < 0) {
                fprintf(stdout, "cannot read '%s': %s\n", path, strerror(-r));
                return r;
        }
        /* FUZZ_VERBOSE: a sanitizer's report follows the input's name. */
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "replaying %s\n", path);
        fflush(stdout);
        current = path;
        LLVMFuzzerTestOneInput((const uint8_t *) data, size);
        current = NULL;
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned n = 0;

        /* The parsers report what they reject; that is expected here. */
        if (!getenv("FUZZ_VERBOSE") && !freopen("/dev/null", "w", stderr))
                return 1;
        /* Where a sanitizer handles a signal, its report says more. */
        for (size_t i = 0; i < ELEMENTSOF(crash_signals); i++) {
                struct sigaction old;
                if (sigaction(crash_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
                        signal(crash_signals[i], on_crash);
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0)
                        return fprintf(stdout, "cannot stat '%s'\n", argv[i]), 1;
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        n++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = NULL;
                        if (de->d_name[0] == '.')
                                continue;
                        p = path_join(argv[i], de->d_name);
                        if (!p || run_file(p) < 0) {
                                closedir(d);
                                return 1;
                        }
                        n++;
                }
                closedir(d);
        }
        printf("%s: %u inputs replayed\n", argv[0], n);
        return 0;
}
