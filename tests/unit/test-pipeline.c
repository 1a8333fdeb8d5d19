/* Pipelines without a database: the spec's checks, the Prometheus
 * conditions, the stage state machine (pipeline_decide()) driven through
 * whole pipelines on a fake clock, and the command gate with its limit. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "tests.h"

#include "ctl.h"
#include "error.h"
#include "fileio.h"
#include "pipeline.h"
#include "json.h"
#include "util.h"

static json_t *spec_json(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        if (!j)
                fail_msg("bad test JSON: %s", e.text);
        return j;
}

/* parse TEXT: 0, or the error message in *ret_error. */
static int parse(const char *text, PipelineSpec *s, json_t **ret_j, char **ret_error) {
        json_t *j = spec_json(text);
        int r = pipeline_spec_parse(j, s, ret_error);

        *ret_j = j;
        return r;
}

static void expect_error(const char *text, const char *message) {
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL;
        PipelineSpec s;

        assert_int_equal(parse(text, &s, &j, &error), -EINVAL);
        if (!error || !strstr(error, message))
                fail_msg("expected an error with '%s', got '%s'", message, error ? error : "(none)");
}

#define TWO_STAGES                                                                                          \
        "{\"image\": \"web:2\", \"prometheus\": \"http://127.0.0.1:9090\", \"stages\": ["                   \
        "{\"name\": \"staging\", \"rollout\": {\"selector\": {\"env\": \"staging\"}}, \"bake\": 60,"      \
        " \"on_failure\": \"rollback\", \"gates\": {\"prometheus\": {\"query\": \"err\", \"condition\": \"< 0.01\"," \
        " \"interval\": 10}, \"command\": {\"argv\": [\"true\"]}}},"                                        \
        "{\"name\": \"production\", \"rollout\": {\"selector\": {\"env\": \"production\"}, \"waves\": [1, \"50%\"]}," \
        " \"gates\": {\"approval\": true}}]}"

/* A spec of one stage "a" (image x, any hosts) whose stage has more
 * members: MEMBERS, each after a ", ". */
#define ONE_STAGE(members) "{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {}" members "}]}"

static void test_spec(void **state) {
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL;
        PipelineSpec s;
        (void) state;

        assert_int_equal(parse(TWO_STAGES, &s, &j, &error), 0);
        assert_int_equal(s.n_stages, 2);
        assert_string_equal(s.stages[0].name, "staging");
        assert_int_equal(s.stages[0].bake, 60);
        assert_true(s.stages[0].rollback);
        assert_int_equal(s.stages[0].n_argv, 1);
        assert_int_equal(s.stages[0].command_timeout, PIPELINE_COMMAND_TIMEOUT_DEFAULT);
        assert_int_equal(s.stages[0].prom_cmp, PROM_LT);
        assert_true(s.stages[0].prom_value == 0.01);
        assert_false(s.stages[0].approval);
        assert_true(s.stages[1].approval);
        assert_false(s.stages[1].rollback);
        assert_null(s.stages[1].prom_query);

        _cleanup_json_ json_t *ro = pipeline_stage_rollout_spec(&s, 1);
        assert_string_equal(json_string_value(json_object_get(ro, "image")), "web:2");
        assert_int_equal(json_array_size(json_object_get(ro, "waves")), 2);

        /* Each refused, with a message that names what is wrong. */
        static const struct {
                const char *text, *message;
        } refused[] = {
                { "[]", "expected a JSON object" },
                { "{\"stages\": []}", "'image'" },
                { "{\"image\": \"x\", \"stages\": []}", "'stages': expected 1 to 8" },
                { "{\"image\": \"x\", \"colour\": 1, \"stages\": []}", "unknown member 'colour'" },
                { "{\"image\": \"x\", \"stages\": [{\"name\": \"a b\", \"rollout\": {}}]}", "'stages[0].name'" },
                { "{\"image\": \"x\", \"stages\": [{\"name\": \"a\"}]}", "'stages[0].rollout'" },
                { "{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {\"image\": \"y\"}}]}",
                  "without 'image'" },
                { "{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {\"waves\": []}}]}",
                  "'stages[0].rollout': 'waves'" },
                { "{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {}}, {\"name\": \"a\", "
                  "\"rollout\": {}}]}",
                  "'a' is taken by stage 0" },
                { ONE_STAGE(", \"on_failure\": \"pause\""), "\"stop\" or \"rollback\"" },
                { ONE_STAGE(", \"gates\": {\"prometheus\": {\"query\": \"q\", \"condition\": \"< 1\"}}"),
                  "names no 'prometheus'" },
                { "{\"image\": \"x\", \"prometheus\": \"http://p\", \"stages\": [{\"name\": \"a\", \"rollout\": {}, "
                  "\"gates\": {\"prometheus\": {\"query\": \"q\", \"condition\": \"about 1\"}}}]}",
                  "'stages[0].gates.prometheus.condition'" },
                { ONE_STAGE(", \"gates\": {\"command\": {\"argv\": []}}"), "'stages[0].gates.command.argv'" },
                { ONE_STAGE(", \"gates\": {\"command\": {\"argv\": [\"true\"], \"timeout\": 0}}"),
                  "'stages[0].gates.command.timeout'" },
                { ONE_STAGE(", \"gates\": {\"http\": {\"url\": \"ftp://x\"}}"), "'stages[0].gates.http'" },
                { ONE_STAGE(", \"gates\": {\"vote\": 1}"), "unknown member 'vote'" },
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                expect_error(refused[i].text, refused[i].message);
}

static void test_conditions(void **state) {
        static const struct {
                const char *text;
                PromCompare cmp;
                double value;
        } good[] = {
                { "< 0.01", PROM_LT, 0.01 }, { "<=5", PROM_LE, 5 }, { " >= -1e3 ", PROM_GE, -1000 },
                { "== 1", PROM_EQ, 1 },      { "!= 0", PROM_NE, 0 }, { "> 2", PROM_GT, 2 },
        };
        static const char *const bad[] = { "< ", "0.01", "< 1 2", "< inf", "=< 1" };
        /* Whether value meets "cmp threshold". */
        static const struct {
                PromCompare cmp;
                double threshold, value;
                bool holds;
        } holds[] = {
                { PROM_LT, 0.01, 0.001, true }, { PROM_LT, 0.01, 0.01, false }, { PROM_LE, 0.01, 0.01, true },
                { PROM_GT, 1, 1, false },       { PROM_GE, 1, 1, true },        { PROM_EQ, 1, 1, true },
                { PROM_LT, 1, NAN, false },     { PROM_NE, 1, NAN, true },
        };
        PromCompare c;
        double v;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(prom_condition_parse(good[i].text, &c, &v), 0);
                assert_int_equal(c, good[i].cmp);
                assert_true(v == good[i].value);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (prom_condition_parse(bad[i], &c, &v) != -EINVAL)
                        fail_msg("'%s' was not refused", bad[i]);
        for (size_t i = 0; i < ELEMENTSOF(holds); i++)
                if (prom_condition_holds(holds[i].cmp, holds[i].threshold, holds[i].value) != holds[i].holds)
                        fail_msg("case %zu: expected %s", i, holds[i].holds ? "true" : "false");
}

/* The state machine's world: a run as stored, the stage's rollout, the
 * gates' answers, and what the caller does with each step. */
typedef struct World {
        PipelineSpec spec;
        json_t *j;
        PipelineRun run;
        uint64_t now;
        bool has_rollout;
        RolloutState rollout;
        int64_t unhealthy;
        bool prom_ok, slow_ok; /* what the Prometheus query, and the final checks, say */
        bool check_pending, check_final;
        uint64_t check_at;
        unsigned checks, finals, rollouts, promotions;
        char *failed;       /* the FAIL step's reason */
        bool rolled_back;
} World;

static void world_init(World *w, const char *text) {
        _cleanup_free_ char *error = NULL;

        *w = (World) { .now = 1000, .prom_ok = true, .slow_ok = true };
        assert_int_equal(parse(text, &w->spec, &w->j, &error), 0);
        w->run = (PipelineRun) { .id = 1, .state = PIPELINE_RUNNING, .phase = PIPELINE_ROLLING, .since = w->now };
}

static void world_release(World *w) {
        free(w->failed);
        free(w->run.approved_by);
        json_decref(w->j);
}

/* One tick: what pipeline.c's tick does with the step, minus the database. */
static PipelineStepKind tick(World *w) {
        PipelineFacts f = { .has_rollout = w->has_rollout, .rollout_state = w->rollout, .unhealthy = w->unhealthy };
        PipelineStep s = {};

        /* A check asked for at the last tick answers now. */
        if (w->check_pending) {
                f.has_check = true;
                f.check_final = w->check_final;
                f.check_ok = w->check_final ? w->slow_ok && w->prom_ok : w->prom_ok;
                f.check_reason = "the gate said no";
                f.check_at = w->check_at;
                w->check_pending = false;
        }
        assert_int_equal(pipeline_decide(&w->spec, &w->run, &f, w->now, &s), 0);
        switch (s.kind) {
        case PIPELINE_STEP_START_ROLLOUT:
                w->has_rollout = true;
                w->rollout = ROLLOUT_RUNNING;
                w->rollouts++;
                w->run.rollout = w->rollouts;
                w->run.since = w->now;
                break;
        case PIPELINE_STEP_STAGE_DONE:
                w->run.phase = PIPELINE_BAKING;
                w->run.since = w->now;
                w->run.checked = 0;
                break;
        case PIPELINE_STEP_CHECK:
                w->check_pending = true;
                w->check_final = s.want_final;
                w->check_at = w->now;
                if (s.want_final)
                        w->finals++;
                else
                        w->checks++;
                break;
        case PIPELINE_STEP_CHECKED:
                w->run.checked = f.check_at;
                break;
        case PIPELINE_STEP_AWAIT_APPROVAL:
                w->run.phase = PIPELINE_APPROVAL;
                w->run.since = w->now;
                break;
        case PIPELINE_STEP_PROMOTE:
                w->promotions++;
                w->run.stage++;
                w->run.phase = PIPELINE_ROLLING;
                w->run.since = w->now;
                w->run.checked = 0;
                free(w->run.approved_by);
                w->run.approved_by = NULL;
                w->has_rollout = false;
                break;
        case PIPELINE_STEP_DONE:
                w->run.state = PIPELINE_DONE;
                break;
        case PIPELINE_STEP_FAIL:
                w->run.state = PIPELINE_FAILED;
                w->failed = TAKE_PTR(s.reason);
                w->rolled_back = s.rollback;
                break;
        default:
                break;
        }
        PipelineStepKind k = s.kind;
        pipeline_step_release(&s);
        return k;
}

/* Ticks once a second for up to seconds, while the pipeline runs. */
static void run_for(World *w, uint64_t seconds) {
        for (uint64_t i = 0; i < seconds && w->run.state == PIPELINE_RUNNING; i++) {
                tick(w);
                w->now++;
        }
}

static void test_promotes(void **state) {
        World w;
        (void) state;

        world_init(&w, TWO_STAGES);
        assert_int_equal(tick(&w), PIPELINE_STEP_START_ROLLOUT);
        /* The rollout runs: nothing moves, however long. */
        w.now += 500;
        assert_int_equal(tick(&w), PIPELINE_STEP_WAIT);
        w.rollout = ROLLOUT_PAUSED;
        assert_int_equal(tick(&w), PIPELINE_STEP_WAIT);
        w.rollout = ROLLOUT_DONE;
        assert_int_equal(tick(&w), PIPELINE_STEP_STAGE_DONE);
        assert_int_equal(w.run.phase, PIPELINE_BAKING);
        uint64_t baked = w.now;
        /* 60 s of bake, a Prometheus query every 10 s from its start. */
        w.now++;
        run_for(&w, 59);
        assert_int_equal(w.run.stage, 0);
        assert_int_equal(w.run.phase, PIPELINE_BAKING);
        assert_int_equal(w.checks, 6);
        assert_int_equal(w.finals, 0);
        assert_int_equal(w.now, baked + 60);
        /* The bake is over: the final checks, then on to production. */
        assert_int_equal(tick(&w), PIPELINE_STEP_CHECK);
        assert_int_equal(w.finals, 1);
        w.now++;
        assert_int_equal(tick(&w), PIPELINE_STEP_PROMOTE);
        assert_int_equal(w.run.stage, 1);
        assert_int_equal(tick(&w), PIPELINE_STEP_START_ROLLOUT);
        assert_int_equal(w.rollouts, 2);
        w.rollout = ROLLOUT_DONE;
        assert_int_equal(tick(&w), PIPELINE_STEP_STAGE_DONE);
        /* Production has no bake and only an approval: it waits for it. */
        assert_int_equal(tick(&w), PIPELINE_STEP_AWAIT_APPROVAL);
        w.now += 3600;
        assert_int_equal(tick(&w), PIPELINE_STEP_WAIT);
        w.run.approved_by = strdup("alice");
        assert_int_equal(tick(&w), PIPELINE_STEP_DONE);
        assert_int_equal(w.run.state, PIPELINE_DONE);
        assert_int_equal(w.promotions, 1);
        world_release(&w);
}

/* The ways staging fails: its rollout is aborted, or once it is done the
 * bake sees a fault (after healthy_for seconds without one). */
static void test_stage_fails(void **state) {
        static const struct {
                RolloutState rollout; /* how the stage's rollout ends */
                uint64_t healthy_for;
                bool prom_miss, command_fails;
                int64_t unhealthy;
                unsigned finals; /* final checks asked for */
                bool rolled_back;
                const char *reason;
        } cases[] = {
                /* One miss in the bake is enough, whatever the others said. */
                { ROLLOUT_DONE, 25, .prom_miss = true, .finals = 0, .rolled_back = true,
                  .reason = "stage staging: the gate said no" },
                { ROLLOUT_DONE, 0, .command_fails = true, .finals = 1, .rolled_back = true,
                  .reason = "stage staging: the gate said no" },
                /* The hosts first: no command runs for a stage that failed them. */
                { ROLLOUT_DONE, 0, .unhealthy = 2, .finals = 0, .rolled_back = true,
                  .reason = "stage staging: 2 host(s) not healthy on the image" },
                /* At once; its own rollback (or an operator's abort) went first. */
                { ROLLOUT_ABORTED, 0, .finals = 0, .rolled_back = false,
                  .reason = "stage staging: its rollout 1 was aborted" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                World w;

                world_init(&w, TWO_STAGES);
                assert_int_equal(tick(&w), PIPELINE_STEP_START_ROLLOUT);
                w.rollout = cases[i].rollout;
                assert_int_equal(tick(&w),
                                 w.rollout == ROLLOUT_DONE ? PIPELINE_STEP_STAGE_DONE : PIPELINE_STEP_FAIL);
                run_for(&w, cases[i].healthy_for);
                if (cases[i].rollout == ROLLOUT_DONE)
                        assert_int_equal(w.run.state, PIPELINE_RUNNING);
                w.prom_ok = !cases[i].prom_miss;
                w.slow_ok = !cases[i].command_fails;
                w.unhealthy = cases[i].unhealthy;
                run_for(&w, 70);
                assert_int_equal(w.run.state, PIPELINE_FAILED);
                assert_int_equal(w.finals, cases[i].finals);
                assert_int_equal(w.rolled_back, cases[i].rolled_back);
                assert_int_equal(w.rollouts, 1);
                assert_string_equal(w.failed, cases[i].reason);
                world_release(&w);
        }
}

static void test_restart_mid_bake(void **state) {
        World w;
        (void) state;

        world_init(&w, TWO_STAGES);
        tick(&w);
        w.rollout = ROLLOUT_DONE;
        tick(&w);
        uint64_t baked = w.run.since;
        run_for(&w, 25);
        /* A restart: the stored run stays, a check in flight is lost. */
        w.check_pending = false;
        uint64_t checked = w.run.checked;
        assert_true(checked > 0);
        w.now += 3;
        assert_int_equal(tick(&w), checked + 10 <= w.now ? PIPELINE_STEP_CHECK : PIPELINE_STEP_WAIT);
        run_for(&w, 200);
        assert_int_equal(w.run.state, PIPELINE_RUNNING);
        assert_int_equal(w.run.stage, 1);
        assert_int_equal(w.run.phase, PIPELINE_ROLLING);
        /* The bake ended when it would have without the restart: the
         * next stage started at most a tick or two later. */
        assert_true(w.run.since >= baked + 60 && w.run.since <= baked + 64);
        world_release(&w);
}

static void test_early_approval(void **state) {
        World w;
        (void) state;

        world_init(&w, "{\"image\": \"x\", \"stages\": [{\"name\": \"only\", \"rollout\": {}, \"bake\": 5, "
                       "\"gates\": {\"approval\": true}}]}");
        tick(&w);
        w.run.approved_by = strdup("bob");
        w.rollout = ROLLOUT_DONE;
        run_for(&w, 4);
        assert_int_equal(w.run.state, PIPELINE_RUNNING);
        run_for(&w, 4);
        /* Approved before the bake ended: done when it ends, no wait. */
        assert_int_equal(w.run.state, PIPELINE_DONE);
        world_release(&w);
}

static void test_command_gate(void **state) {
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL;
        PipelineSpec s;
        char *reason = NULL;
        (void) state;

        assert_int_equal(parse("{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {}, \"gates\": "
                               "{\"command\": {\"argv\": [\"sh\", \"-c\", \"exit 0\"]}}}, {\"name\": \"b\", "
                               "\"rollout\": {}, \"gates\": {\"command\": {\"argv\": [\"sh\", \"-c\", \"echo one; "
                               "echo smoke test failed >&2; exit 3\"]}}}, {\"name\": \"c\", \"rollout\": {}, "
                               "\"gates\": {\"command\": {\"argv\": [\"sleep\", \"30\"], \"timeout\": 1}}}, "
                               "{\"name\": \"d\", \"rollout\": {}, \"gates\": {\"command\": {\"argv\": "
                               "[\"/nonexistent/check\"]}}}]}",
                               &s, &j, &error),
                         0);
        assert_int_equal(gate_run(&s, 0, true, NULL, &reason), 1);
        assert_null(reason);
        /* In the bake only the Prometheus query runs, never the command. */
        assert_int_equal(gate_run(&s, 1, false, NULL, &reason), 1);
        assert_int_equal(gate_run(&s, 1, true, NULL, &reason), 0);
        assert_string_equal(reason, "the command 'sh' exited with status 3: smoke test failed");
        free(reason);
        uint64_t t0 = now_usec();
        assert_int_equal(gate_run(&s, 2, true, NULL, &reason), 0);
        assert_string_equal(reason, "the command 'sleep' did not finish within 1 s");
        /* Killed at its limit, not waited for. */
        assert_true(now_usec() - t0 < 10 * 1000 * 1000);
        free(reason);
        assert_int_equal(gate_run(&s, 3, true, NULL, &reason), 0);
        assert_non_null(strstr(reason, "/nonexistent/check"));
        free(reason);
}

/* slipwayd blocks SIGTERM (it waits for it with sigtimedwait): a gate's
 * command does not inherit that, and ends on a SIGTERM as it should. */
static void test_command_signals(void **state) {
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL, *reason = NULL;
        sigset_t mask, old;
        PipelineSpec s;
        (void) state;

        assert_int_equal(parse("{\"image\": \"x\", \"stages\": [{\"name\": \"a\", \"rollout\": {}, \"gates\": "
                               "{\"command\": {\"argv\": [\"sh\", \"-c\", \"kill -TERM $$; sleep 20\"], "
                               "\"timeout\": 15}}}]}",
                               &s, &j, &error),
                         0);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        assert_int_equal(pthread_sigmask(SIG_BLOCK, &mask, &old), 0);
        uint64_t t0 = now_usec();
        int r = gate_run(&s, 0, true, NULL, &reason);
        assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
        assert_int_equal(r, 0);
        assert_non_null(strstr(reason, "killed by a signal"));
        assert_true(now_usec() - t0 < 10 * 1000 * 1000);
}

/* docs/operations.md's example, read by slipctl's parser, makes a spec
 * the server takes, with every key where it belongs. */
static void test_file(void **state) {
        static const char text[] =
                "# web 2.4: staging first, then production\n"
                "[pipeline]\n"
                "name = web-2.4\n"
                "image = web:2.4\n"
                "prometheus = http://prometheus.example:9090\n"
                "\n"
                "[stage staging]\n"
                "selector = env=staging\n"
                "waves = 1, 100%\n"
                "wave-bake = 60\n"
                "bake = 1800\n"
                "on-failure = rollback\n"
                "command = /usr/local/bin/smoke-test --env staging\n"
                "command-timeout = 300\n"
                "http = https://web.staging.example/healthz\n"
                "http-body = ok\n"
                "prometheus = sum(rate(http_errors_total{env=\"staging\"}[5m])) / "
                "sum(rate(http_requests_total{env=\"staging\"}[5m]))\n"
                "condition = < 0.01\n"
                "interval = 30\n"
                "\n"
                "[stage production]\n"
                "selector = env=production service=web\n"
                "waves = 1, 10%, 50%, 100%\n"
                "wave-bake = 600\n"
                "max-failures = 2%\n"
                "order = zone=a,b\n"
                "window = rack@22:00-04:00\n"
                "budget = rack:1, service:5%\n"
                "budget = service=db:min=2\n"
                "approval = yes\n";
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL, *dump = NULL;
        _cleanup_error_ Error e = {};
        PipelineSpec s;
        FILE *f;
        (void) state;

        f = fopen("p.conf", "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(ctl_pipeline_file("p.conf", &j, &e), 0);
        if (pipeline_spec_parse(j, &s, &error) < 0)
                fail_msg("the example is refused: %s", error);
        assert_string_equal(s.name, "web-2.4");
        assert_int_equal(s.n_stages, 2);
        assert_true(s.stages[0].rollback);
        assert_int_equal(s.stages[0].bake, 1800);
        assert_int_equal(s.stages[0].n_argv, 3);
        assert_string_equal(s.stages[0].argv[2], "staging");
        assert_int_equal(s.stages[0].command_timeout, 300);
        assert_string_equal(s.stages[0].http_body, "ok");
        assert_int_equal(s.stages[0].interval, 30);
        assert_true(s.stages[1].approval);
        assert_false(s.stages[1].rollback);
        dump = json_dumps(s.stages[1].rollout, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(dump, "{\"bake\":600,\"budgets\":{\"rack\":1,\"service\":\"5%\",\"service=db\":"
                                  "{\"min_available\":2}},\"max_failures\":\"2%\",\"order\":{\"key\":\"zone\",\"values\":[\"a\",\"b\"]},"
                                  "\"selector\":{\"env\":\"production\",\"service\":\"web\"},\"waves\":[1,\"10%\","
                                  "\"50%\",\"100%\"],\"windows\":{\"rack\":\"22:00-04:00\"}}");

        /* A budget that is not SELECTOR:AMOUNT is an error with its line. */
        f = fopen("bad.conf", "we");
        assert_non_null(f);
        assert_int_equal(fputs("[pipeline]\nimage = x\n[stage a]\nbudget = rack:1, rack\n", f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        json_decref(j);
        j = NULL;
        assert_int_equal(ctl_pipeline_file("bad.conf", &j, &e), -EINVAL);
        assert_int_equal(e.line, 4);
        error_clear(&e);

        /* A key out of place is an error with its line. */
        f = fopen("bad.conf", "we");
        assert_non_null(f);
        assert_int_equal(fputs("[pipeline]\nimage = x\nbake = 3\n", f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        json_decref(j);
        j = NULL;
        assert_int_equal(ctl_pipeline_file("bad.conf", &j, &e), -EINVAL);
        assert_int_equal(e.line, 3);
        assert_string_equal(e.message, "unknown key 'bake' in [pipeline]");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_spec),
                test_in_dir(test_conditions),
                test_in_dir(test_promotes),
                test_in_dir(test_stage_fails),
                test_in_dir(test_restart_mid_bake),
                test_in_dir(test_early_approval),
                test_in_dir(test_command_gate),
                test_in_dir(test_command_signals),
                test_in_dir(test_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
