/* Fuzzes the agent's state file reader (agent_state_load()): whatever it
 * accepts must save and load again to the same state. The corpus holds
 * state files agent_state_save() wrote at each phase of an update. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "fileio.h"
#include "fuzz.h"
#include "state.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_state(const AgentState *a, const AgentState *b) {
        for (int i = 0; i < 2; i++)
                if (!streq_ptr(a->slots[i].image, b->slots[i].image) ||
                    !streq_ptr(a->slots[i].version, b->slots[i].version) || a->slots[i].complete != b->slots[i].complete)
                        return false;
        return streq_ptr(a->host_id, b->host_id) && streq_ptr(a->token, b->token) && streq_ptr(a->server, b->server) &&
               streq_ptr(a->server_in_use, b->server_in_use) &&
               a->phase == b->phase && streq_ptr(a->target_image, b->target_image) &&
               streq_ptr(a->target_version, b->target_version) && streq_ptr(a->target_manifest, b->target_manifest) &&
               streq_ptr(a->target_signature, b->target_signature) && a->target_slot == b->target_slot &&
               a->target_gen == b->target_gen && a->target_rollback == b->target_rollback &&
               a->written == b->written && a->lease_epoch == b->lease_epoch &&
               streq_ptr(a->reboot_from, b->reboot_from) && streq_ptr(a->reported, b->reported) &&
               streq_ptr(a->message, b->message) && streq_ptr(a->failed_image, b->failed_image) &&
               streq_ptr(a->failed_reason, b->failed_reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *dir = fuzz_mkdtemp("state"), *in = NULL, *out = NULL;
        AgentState s = {}, again = {};

        in = path_join(dir, "in.json");
        out = path_join(dir, "agent.json");
        if (!in || !out || write_file_atomic(in, data, size, 0600) < 0)
                abort();
        if (agent_state_load(in, &s) == 0) {
                if (agent_state_save(out, &s) < 0 || agent_state_load(out, &again) < 0)
                        abort();
                if (!same_state(&s, &again))
                        abort();
                agent_state_release(&again);
                agent_state_release(&s);
        }
        (void) unlink(in);
        (void) unlink(out);
        (void) rmdir(dir);
        return 0;
}
