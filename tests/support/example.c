/* example.c — the example project in a temp git workspace, trained models, and child processes. */
#include "example.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/http.h>

#include "ctx.h"

int ex_have_sklearn(void)
{
    static int known = -1;
    if (known < 0) {
        struct tu_cmd res;
        tu_sh(EX_PYTHON " -c 'import sklearn'", NULL, NULL, &res);
        known = res.exit_code == 0;
        if (!known)
            fprintf(stderr,
                    "\nSKIPPED: %s cannot import sklearn (apt-get install python3-sklearn); "
                    "the example project cannot be trained or served\n%s\n",
                    EX_PYTHON, res.err);
        tu_cmd_free(&res);
    }
    return known;
}

char *ex_workspace(void)
{
    char *ws = tu_tmpdir();
    char *cmd = tu_fmt("cp -R '%s/examples' '%s/tasks' . && git init -q . && git add -A && "
                       "git -c user.name=mlstage-test -c user.email=test@mlstage.local "
                       "commit -q -m 'the example project'",
                       MLSTAGE_SOURCE_DIR, MLSTAGE_SOURCE_DIR);
    struct tu_cmd res;
    tu_sh(cmd, NULL, ws, &res);
    if (res.exit_code != 0)
        fprintf(stderr, "ex_workspace: %s\n%s%s\n", cmd, res.out, res.err);
    tu_cmd_free(&res);
    free(cmd);
    return ws;
}

int ex_train(const char *out, const double *alphas, size_t n)
{
    char list[4096] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(list); i++)
        used +=
            (size_t)snprintf(list + used, sizeof(list) - used, "%s'%g'", i ? "," : "", alphas[i]);
    char *script =
        tu_fmt("import runpy, sys\n"
               "for i, a in enumerate([%s]):\n"
               "    sys.argv = ['train.py', '--alpha', a, '--out', '%s/%%d' %% i]\n"
               "    try:\n"
               "        runpy.run_path('%s/examples/diabetes/train.py', run_name='__main__')\n"
               "    except SystemExit as e:\n"
               "        if e.code:\n"
               "            raise\n",
               list, out, MLSTAGE_SOURCE_DIR);
    const char *argv[] = {EX_PYTHON, "-c", script, NULL};
    struct tu_cmd res;
    tu_run(argv, NULL, NULL, NULL, 300, &res);
    int rc = res.exit_code == 0 ? 0 : -1;
    if (rc)
        fprintf(stderr, "ex_train failed:\n%s%s\n", res.out, res.err);
    tu_cmd_free(&res);
    free(script);
    return rc;
}

char *ex_git(const char *dir, const char *rev)
{
    char *cmd = tu_fmt("git rev-parse %s", rev);
    struct tu_cmd res;
    tu_sh(cmd, NULL, dir, &res);
    char *nl = strchr(res.out, '\n');
    if (nl)
        *nl = '\0';
    char *out = strdup(res.out);
    tu_cmd_free(&res);
    free(cmd);
    return out;
}

void ex_mlstage(const char *ws, const char *const *args, const char *const *env, struct tu_cmd *res)
{
    const char *argv[48];
    size_t n = 0;
    for (const char *const *a = args; *a && n < 44; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    const char *full_env[40] = {"TF_BUILD",
                                "GITHUB_ACTIONS",
                                "GITHUB_OUTPUT",
                                "GITHUB_STEP_SUMMARY",
                                "MLSTAGE_PLUGIN_PATH",
                                "NO_COLOR=1"};
    size_t e = 6;
    for (const char *const *v = env; v && *v && e < 39; v++)
        full_env[e++] = *v;
    full_env[e] = NULL;
    tu_mlstage(argv, full_env, ws, res);
}

json_object *ex_json(const char *text)
{
    return text ? json_tokener_parse(text) : NULL;
}

const char *ex_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

const char *ex_output(json_object *doc, const char *key)
{
    json_object *outputs = NULL;
    if (!doc || !json_object_object_get_ex(doc, "outputs", &outputs))
        return NULL;
    return ex_str(outputs, key);
}

void ex_become_subreaper(void)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
}

void ex_reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int ex_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

size_t ex_children(pid_t *out, size_t max)
{
    char path[64];
    size_t count = 0;
    ex_reap();
    snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
    FILE *f = fopen(path, "r");
    long pid;
    while (f && fscanf(f, "%ld", &pid) == 1) {
        if (!ex_alive((pid_t)pid))
            continue;
        if (count < max)
            out[count] = (pid_t)pid;
        count++;
    }
    if (f)
        fclose(f);
    return count;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Non-zero while any process of the group has not been reaped. */
static int group_exists(pid_t pgid)
{
    ex_reap();
    return kill(-pgid, 0) == 0;
}

int ex_stop_group(pid_t pgid)
{
    if (pgid <= 0)
        return 0;
    kill(-pgid, SIGTERM);
    double deadline = mono() + 5;
    while (group_exists(pgid) && mono() < deadline)
        usleep(10000);
    kill(-pgid, SIGKILL);
    deadline = mono() + 2;
    while (group_exists(pgid) && mono() < deadline)
        usleep(10000);
    return ex_alive(pgid) ? -1 : 0;
}

long ex_http(const char *method, const char *url, const char *body, char **answer)
{
    struct mlstage_ctx *ctx = ctx_new();
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct mlstage_http_request req = {
        .method = method,
        .url = url,
        .headers = body ? headers : NULL,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_attempts = 1,
        .timeout_s = 10,
        .deadline_s = 10,
    };
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    long status = resp ? resp->status : 0;
    if (answer)
        *answer = strdup(resp && resp->body ? resp->body : "");
    mlstage_http_response_free(resp);
    ctx_free(ctx);
    return status;
}
