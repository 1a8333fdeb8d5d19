/* slipctl audit: the server's audit log, paged, filtered, followed. */
#include <inttypes.h>
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

/* The most entries the server returns per request. */
#define AUDIT_PAGE 1000
/* --follow without --limit shows this many existing entries first. */
#define AUDIT_TAIL_DEFAULT 10
#define FOLLOW_INTERVAL_MSEC 1000

static const char *const headers[] = { "ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL" };
/* Fixed minimum widths keep the columns steady while following. */
static const size_t min_widths[] = { 4, 19, 12, 14, 16, 0 };

static char *audit_path(Ctl *ctl, uint64_t since, uint64_t limit) {
        _cleanup_free_ char *action = NULL;

        if (ctl->opt.action) {
                action = api_escape(ctl->opt.action);
                if (!action)
                        return NULL;
        }
        return strdup_printf("/v1/audit?since=%" PRIu64 "&limit=%" PRIu64 "%s%s", since, limit,
                             action ? "&action=" : "", strempty(action));
}

/* Appends the entries after *cursor to out, at most max of them (0: all
 * there are); keep_last > 0 keeps only the newest keep_last in out. Moves
 * *cursor past what was read. Logs failures, but for no answer from the
 * server when quiet_unreachable is set. */
static int audit_fetch(Ctl *ctl, uint64_t *cursor, uint64_t max, size_t keep_last, bool quiet_unreachable,
                       json_t *out) {
        uint64_t got = 0;

        for (;;) {
                uint64_t want = max > 0 ? MIN(max - got, (uint64_t) AUDIT_PAGE) : AUDIT_PAGE;
                _cleanup_free_ char *path = audit_path(ctl, *cursor, want);
                json_t *reply = NULL, *entries, *e;
                size_t i, n;
                int r;

                if (!path)
                        return log_oom();
                r = api_request(ctl->api, "GET", path, NULL, NULL, &reply);
                if (r < 0 && quiet_unreachable && api_client_unreachable(ctl->api))
                        return r;
                if (r < 0)
                        return ctl_log_error(ctl, r, "cannot read the audit log");
                entries = json_object_get(reply, "entries");
                n = json_array_size(entries);
                json_array_foreach(entries, i, e) {
                        json_int_t id = json_integer_value(json_object_get(e, "id"));
                        if (id <= 0 || (uint64_t) id <= *cursor) {
                                /* Not moving forward would loop forever. */
                                json_decref(reply);
                                return log_error_errno(-EBADMSG, "the audit log from %s has an entry out of order",
                                                       api_client_url(ctl->api));
                        }
                        *cursor = (uint64_t) id;
                        json_array_append(out, e);
                        if (keep_last > 0 && json_array_size(out) > keep_last)
                                json_array_remove(out, 0);
                }
                json_decref(reply);
                got += n;
                if (n < want || (max > 0 && got >= max))
                        return 0;
        }
}

static int print_entries(Ctl *ctl, Table *t, json_t *entries, bool header) {
        json_t *e;
        size_t i;
        int r;

        if (ctl->json) {
                /* One entry per line: the stream stays parseable while it grows. */
                json_array_foreach(entries, i, e) {
                        _cleanup_free_ char *line = json_dumps(e, JSON_COMPACT);
                        if (!line)
                                return log_oom();
                        printf("%s\n", line);
                }
                fflush(stdout);
                return 0;
        }
        json_array_foreach(entries, i, e) {
                _cleanup_free_ char *detail = json_inline(json_object_get(e, "detail"));
                const char *target = json_string_value(json_object_get(e, "target"));
                char id[24], when[40], short_target[13];
                time_t tt = (time_t) json_integer_value(json_object_get(e, "time"));
                struct tm tm;

                snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(e, "id")));
                if (!localtime_r(&tt, &tm) || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
                        snprintf(when, sizeof(when), "%lld", (long long) tt);
                /* Image and blob digests: their first 12 digits are enough here. */
                if (target && sha256_hex_valid(target)) {
                        snprintf(short_target, sizeof(short_target), "%.12s", target);
                        target = short_target;
                }
                r = table_add_row(t, (const char *const[]) {
                                             id, when, json_string_value(json_object_get(e, "actor")),
                                             json_string_value(json_object_get(e, "action")), target, detail });
                if (r < 0)
                        return log_oom();
        }
        if (header || table_rows(t) > 0)
                table_print(t, stdout, header, ctl->opt.follow ? min_widths : NULL);
        fflush(stdout);
        return 0;
}

/* Polls for new entries until killed. A server that stops answering is
 * waited for; one that refuses ends it. */
static int follow(Ctl *ctl, Table *t, uint64_t cursor) {
        bool warned = false;

        for (;;) {
                json_t *batch = json_array();
                int r;

                if (!batch)
                        return log_oom();
                ctl_sleep_msec(FOLLOW_INTERVAL_MSEC);
                r = audit_fetch(ctl, &cursor, 0, 0, true, batch);
                if (r < 0 && api_client_unreachable(ctl->api)) {
                        if (!warned)
                                log_warning("cannot read the audit log: %s; trying again every second",
                                            api_client_error(ctl->api));
                        warned = true;
                        json_decref(batch);
                        continue;
                }
                if (r >= 0) {
                        if (warned)
                                log_info("the server at %s answers again", api_client_url(ctl->api));
                        warned = false;
                        r = print_entries(ctl, t, batch, false);
                }
                json_decref(batch);
                if (r < 0)
                        return r;
        }
}

int ctl_audit(Ctl *ctl, char **args _unused_) {
        _cleanup_table_free_ Table *t = NULL;
        uint64_t cursor = ctl->opt.since;
        json_t *entries;
        int r;

        t = table_new(ELEMENTSOF(headers), headers);
        entries = json_array();
        if (!t || !entries) {
                json_decref(entries);
                return log_oom();
        }
        if (ctl->opt.follow)
                r = audit_fetch(ctl, &cursor, 0, ctl->opt.limit > 0 ? ctl->opt.limit : AUDIT_TAIL_DEFAULT, false,
                                entries);
        else
                r = audit_fetch(ctl, &cursor, ctl->opt.limit, 0, false, entries);
        if (r < 0) {
                json_decref(entries);
                return r;
        }
        if (ctl->json && !ctl->opt.follow) {
                json_t *out = json_pack("{s:o}", "entries", entries);
                r = out ? ctl_print_json(out) : log_oom();
                json_decref(out);
                return r;
        }
        if (!ctl->opt.follow && !ctl->json && json_array_size(entries) == 0) {
                json_decref(entries);
                printf("no audit entries%s\n", ctl->opt.since_set || ctl->opt.action ? " match" : "");
                return 0;
        }
        r = print_entries(ctl, t, entries, true);
        json_decref(entries);
        if (r < 0 || !ctl->opt.follow)
                return r;
        return follow(ctl, t, cursor);
}
