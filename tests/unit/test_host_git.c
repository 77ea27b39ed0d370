/* test_host_git.c — the plugin host and the git collection that runs beside the plugin. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctx.h"
#include "host.h"
#include "manifest.h"
#include "testutil.h"

/* A stand-in for the collection: it has answered once its pipe holds a byte. */
struct fake_git {
    int fds[2];
    int calls;
    int answered;
    json_object *value;
};

static int fake_git_poll_fd(void *ud)
{
    struct fake_git *g = ud;
    return g->answered ? -1 : g->fds[0];
}

static json_object *fake_git_get(void *ud)
{
    struct fake_git *g = ud;
    g->calls++;
    return g->value;
}

/* Answers after a delay, as a collector still walking the work tree would. */
static void *answer_later(void *ud)
{
    struct fake_git *g = ud;
    usleep(100 * 1000);
    if (write(g->fds[1], "x", 1) != 1)
        perror("write");
    return NULL;
}

struct run {
    char *dir;
    struct task_manifest *task;
    struct mlstage_ctx *ctx;
    struct host_result res;
};

static int run_plugin(struct run *r, const char *mode, struct fake_git *g, int with_poll_fd)
{
    r->dir = tu_tmpdir();
    char *path = tu_fmt("%s/t.yml", r->dir);
    char *text = tu_fmt("task: t\nplugin: test-plugin\ninputs:\n  mode: %s\n", mode);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, text), 0);
    struct mls_err err = {0};
    CU_ASSERT_EQUAL_FATAL(manifest_task_load(path, &r->task, &err), 0);
    r->ctx = ctx_new();
    struct host_run_spec spec = {
        .plugin_path = MLSTAGE_TEST_PLUGIN_DIR "/test-plugin.so",
        .plugin_name = "test-plugin",
        .ctx = r->ctx,
        .task = r->task,
        .inputs = r->task->inputs,
        .timeout_s = 30,
        .git = fake_git_get,
        .git_poll_fd = with_poll_fd ? fake_git_poll_fd : NULL,
        .git_ud = g,
    };
    free(text);
    free(path);
    return host_run(&spec, &r->res);
}

static const char *output(struct run *r, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(r->ctx->outputs, key, &v) ? json_object_get_string(v) : NULL;
}

static void run_free(struct run *r)
{
    host_result_free(&r->res);
    ctx_free(r->ctx);
    manifest_task_free(r->task);
    tu_rm_rf(r->dir);
    free(r->dir);
}

static void fake_init(struct fake_git *g)
{
    memset(g, 0, sizeof(*g));
    CU_ASSERT_EQUAL_FATAL(pipe(g->fds), 0);
    g->value = json_tokener_parse("{\"commit\": \"0123456789abcdef0123456789abcdef01234567\"}");
}

static void fake_free(struct fake_git *g)
{
    close(g->fds[0]);
    close(g->fds[1]);
    json_object_put(g->value);
}

static void a_plugin_that_never_asks_finishes_without_waiting_for_git(void)
{
    struct fake_git g;
    fake_init(&g);
    struct run r = {0};
    /* The collection never answers: the host must not wait for it. */
    CU_ASSERT_EQUAL(run_plugin(&r, "ok", &g, 1), 0);
    CU_ASSERT_EQUAL(g.calls, 0);
    CU_ASSERT_STRING_EQUAL(output(&r, "greeting"), "hello");
    run_free(&r);
    fake_free(&g);
}

static void a_plugin_that_asks_gets_git_once_the_collection_answers(void)
{
    struct fake_git g;
    fake_init(&g);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, answer_later, &g), 0);
    struct run r = {0};
    CU_ASSERT_EQUAL(run_plugin(&r, "git", &g, 1), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(g.calls, 1);
    CU_ASSERT_STRING_EQUAL(output(&r, "commit"), "0123456789abcdef0123456789abcdef01234567");
    run_free(&r);
    fake_free(&g);
}

static void without_a_poll_fd_git_is_sent_at_once(void)
{
    struct fake_git g;
    fake_init(&g);
    struct run r = {0};
    CU_ASSERT_EQUAL(run_plugin(&r, "git", &g, 0), 0);
    CU_ASSERT_EQUAL(g.calls, 1);
    CU_ASSERT_STRING_EQUAL(output(&r, "commit"), "0123456789abcdef0123456789abcdef01234567");
    run_free(&r);
    fake_free(&g);
}

static void outside_a_repository_the_plugin_sees_no_git(void)
{
    struct fake_git g;
    fake_init(&g);
    json_object_put(g.value);
    g.value = NULL;
    CU_ASSERT_EQUAL_FATAL(write(g.fds[1], "x", 1), 1);
    struct run r = {0};
    CU_ASSERT_EQUAL(run_plugin(&r, "git", &g, 1), 0);
    CU_ASSERT_STRING_EQUAL(output(&r, "commit"), "none");
    run_free(&r);
    fake_free(&g);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"a plugin that never asks for git finishes without waiting for it",
         a_plugin_that_never_asks_finishes_without_waiting_for_git},
        {"a plugin that asks gets git once the collection answers",
         a_plugin_that_asks_gets_git_once_the_collection_answers},
        {"without a poll descriptor git is sent at once", without_a_poll_fd_git_is_sent_at_once},
        {"outside a repository the plugin sees no git",
         outside_a_repository_the_plugin_sees_no_git},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "host_git", tests);
}
