/* Prometheus's text exposition format (metrics-text.h). */
#include "metrics-text.h"
#include "util.h"

void metrics_label_put(FILE *f, const char *s) {
        if (isempty(s))
                s = "none";
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                fputc(*s, f);
        }
        fputc('"', f);
}
