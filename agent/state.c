#include <jansson.h>

#include "fileio.h"
#include "state.h"
#include "util.h"

#define STATE_SIZE_MAX (1024 * 1024)

static const char *const phases[_PHASE_MAX] = {
        [PHASE_IDLE] = "idle",
        [PHASE_STAGING] = "staging",
        [PHASE_STAGED] = "staged",
        [PHASE_REBOOTING] = "rebooting",
};

const char *phase_to_string(Phase p) {
        return p >= 0 && p < _PHASE_MAX ? phases[p] : NULL;
}

Phase phase_from_string(const char *s) {
        for (Phase p = 0; s && p < _PHASE_MAX; p++)
                if (streq(phases[p], s))
                        return p;
        return _PHASE_INVALID;
}

int state_set(char **field, const char *value) {
        char *c = NULL;

        if (value) {
                c = strdup(value);
                if (!c)
                        return -ENOMEM;
        }
        free(*field);
        *field = c;
        return 0;
}

static int get_str(json_t *o, const char *key, char **field) {
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        return state_set(field, json_string_value(v));
}

static uint64_t get_uint(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t) json_integer_value(v) : 0;
}

int agent_state_load(const char *path, AgentState *ret) {
        _cleanup_free_ char *data = NULL;
        AgentState s = { .phase = PHASE_IDLE };
        json_t *j, *slots;
        size_t n;
        int r;

        r = read_full_file(path, STATE_SIZE_MAX, &data, &n);
        if (r == -ENOENT) {
                *ret = s;
                return 0;
        }
        if (r < 0)
                return r;
        j = json_loadb(data, n, 0, NULL);
        if (!json_is_object(j)) {
                json_decref(j);
                return -EBADMSG;
        }
        r = get_str(j, "host_id", &s.host_id);
        if (r >= 0)
                r = get_str(j, "token", &s.token);
        if (r >= 0)
                r = get_str(j, "server", &s.server);
        if (r >= 0)
                r = get_str(j, "server_in_use", &s.server_in_use);
        slots = json_object_get(j, "slots");
        for (int i = 0; r >= 0 && i < 2; i++) {
                json_t *o = json_object_get(slots, i == 0 ? "a" : "b");
                r = get_str(o, "image", &s.slots[i].image);
                if (r >= 0)
                        r = get_str(o, "version", &s.slots[i].version);
                s.slots[i].complete = json_is_true(json_object_get(o, "complete"));
        }
        s.phase = phase_from_string(json_string_value(json_object_get(j, "phase")));
        if (s.phase < 0)
                s.phase = PHASE_IDLE;
        if (r >= 0)
                r = get_str(j, "target_image", &s.target_image);
        if (r >= 0)
                r = get_str(j, "target_version", &s.target_version);
        if (r >= 0)
                r = get_str(j, "target_manifest", &s.target_manifest);
        if (r >= 0)
                r = get_str(j, "target_signature", &s.target_signature);
        if (r >= 0) {
                const char *ts = json_string_value(json_object_get(j, "target_slot"));
                s.target_slot = ts && (streq(ts, "a") || streq(ts, "b")) ? ts[0] : 0;
        }
        s.target_gen = (unsigned) get_uint(j, "target_gen");
        s.target_rollback = json_is_true(json_object_get(j, "target_rollback"));
        s.written = get_uint(j, "written");
        s.lease_epoch = get_uint(j, "lease_epoch");
        if (r >= 0)
                r = get_str(j, "reboot_from", &s.reboot_from);
        if (r >= 0)
                r = get_str(j, "reported", &s.reported);
        if (r >= 0)
                r = get_str(j, "message", &s.message);
        if (r >= 0)
                r = get_str(j, "failed_image", &s.failed_image);
        if (r >= 0)
                r = get_str(j, "failed_reason", &s.failed_reason);
        if (r >= 0)
                r = get_str(j, "target_files", &s.target_files);
        if (r >= 0)
                r = get_str(j, "failed_files", &s.failed_files);
        json_decref(j);
        if (r < 0) {
                agent_state_release(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int agent_state_save(const char *path, const AgentState *s) {
        _cleanup_free_ char *text = NULL;
        char slot[2] = { s->target_slot, 0 };
        json_t *j, *slots = json_object();

        for (int i = 0; i < 2; i++)
                json_object_set_new(slots, i == 0 ? "a" : "b",
                                    json_pack("{s:s?, s:s?, s:b}", "image", s->slots[i].image, "version",
                                              s->slots[i].version, "complete", s->slots[i].complete));
        j = json_pack("{s:s?, s:s?, s:s?, s:s?, s:o, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:b, s:I, s:I, s:s?, s:s?, "
                      "s:s?, s:s?, s:s?}",
                      "host_id", s->host_id, "token", s->token, "server", s->server, "server_in_use",
                      s->server_in_use, "slots", slots, "phase", phase_to_string(s->phase),
                      "target_image", s->target_image, "target_version", s->target_version, "target_manifest",
                      s->target_manifest, "target_signature", s->target_signature, "target_slot",
                      s->target_slot ? slot : NULL, "target_gen", (json_int_t) s->target_gen, "target_rollback",
                      s->target_rollback, "written", (json_int_t) s->written, "lease_epoch",
                      (json_int_t) s->lease_epoch, "reboot_from", s->reboot_from, "reported", s->reported, "message", s->message, "failed_image",
                      s->failed_image, "failed_reason", s->failed_reason);
        if (j && ((s->target_files && json_object_set_new(j, "target_files", json_string(s->target_files)) < 0) ||
                  (s->failed_files && json_object_set_new(j, "failed_files", json_string(s->failed_files)) < 0))) {
                json_decref(j);
                j = NULL;
        }
        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        if (!text)
                return -ENOMEM;
        /* It holds the host token. */
        return write_file_atomic(path, text, strlen(text), 0600);
}

void agent_state_clear_target(AgentState *s) {
        free(s->target_image);
        free(s->target_version);
        free(s->target_manifest);
        free(s->target_signature);
        free(s->target_files);
        s->target_image = s->target_version = s->target_manifest = s->target_signature = s->target_files = NULL;
        s->target_slot = 0;
        s->target_gen = 0;
        s->target_rollback = false;
        s->written = 0;
        free(s->reboot_from);
        s->reboot_from = NULL;
        s->phase = PHASE_IDLE;
}

void agent_state_release(AgentState *s) {
        agent_state_clear_target(s);
        free(s->host_id);
        free(s->server);
        free(s->server_in_use);
        free(s->token);
        for (int i = 0; i < 2; i++) {
                free(s->slots[i].image);
                free(s->slots[i].version);
        }
        free(s->reported);
        free(s->message);
        free(s->failed_image);
        free(s->failed_reason);
        free(s->failed_files);
        *s = (AgentState) {};
}
