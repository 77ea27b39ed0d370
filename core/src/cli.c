/* cli.c — the mlstage command line: commands, options, output and exit codes. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/plugin.h>
#include <mlstage/version.h>

#include "ci.h"
#include "cli_internal.h"
#include "expand.h"
#include "gitinfo.h"
#include "host.h"
#include "log.h"
#include "mask.h"
#include "prov.h"
#include "schema.h"
#include "stage.h"

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* ---- help -------------------------------------------------------------- */

static const char usage_main[] =
    "usage: mlstage COMMAND [OPTIONS]\n"
    "\n"
    "Runs one stage of an MLOps pipeline as one command.\n"
    "\n"
    "commands:\n"
    "  run TASK.yml              run one stage\n"
    "  pipeline run PIPELINE.yml run the stages of a pipeline in order\n"
    "  validate FILE.yml...      check manifests against their plugins' input schemas\n"
    "  plugins                   list the plugins found, with their inputs\n"
    "  provenance verify PATH    re-hash an artefact and check it against its statement\n"
    "  models list|show NAME[:VERSION]  the local model registry\n"
    "\n"
    "  --version                 print the version\n"
    "  --help                    this text; COMMAND --help for a command's options\n"
    "\n"
    "exit codes: 0 done, 1 the stage's work failed, 2 usage/manifest/input error,\n"
    "3 plugin could not be loaded, 4 backend authentication/configuration, 5 remote\n"
    "service kept failing, 70 internal error or plugin crash, 124 timeout.\n";

#define USAGE_SET                                                                                  \
    "  --set KEY=VALUE           define ${var.KEY}; also overrides input KEY when the\n"           \
    "                            plugin declares it (repeatable)\n"
#define USAGE_PLACES                                                                               \
    "  --workspace DIR           where .mlstage/ lives (default: the git top level, or .)\n"       \
    "  --output text|json        json: one JSON document on stdout\n"                              \
    "  --ci auto|azure-devops|github|none   CI syntax (default auto: TF_BUILD, "                   \
    "GITHUB_ACTIONS)\n"                                                                            \
    "  --plugin-path DIR         search DIR for plugins first (repeatable)\n"                      \
    "  -v, --verbose             debug output\n"                                                   \
    "  -q, --quiet               errors and warnings only\n"                                       \
    "  -h, --help                this text\n"

static const char usage_validate[] = USAGE_SET USAGE_PLACES;

static const char usage_common[] =
    USAGE_SET "  --backend local|azureml   override the manifest's backend\n"
              "  --dry-run                 print what would happen; send no mutating request and\n"
              "                            write nothing outside the run folder\n" USAGE_PLACES;

static void print_usage(FILE *f, const char *cmd)

{
    if (!cmd) {
        fputs(usage_main, f);
        return;
    }
    if (strcmp(cmd, "run") == 0) {
        fprintf(f, "usage: mlstage run TASK.yml [OPTIONS]\n\nRuns one stage.\n\n%s", usage_common);
    } else if (strcmp(cmd, "pipeline") == 0) {
        fprintf(f,
                "usage: mlstage pipeline run PIPELINE.yml [OPTIONS]\n\n"
                "Runs the stages of a pipeline in order; a stage with a when: condition that\n"
                "does not hold is skipped.\n\n"
                "  --only STAGE              run only this stage (repeatable)\n"
                "  --from STAGE              start at this stage (earlier ones are skipped)\n%s",
                usage_common);
    } else if (strcmp(cmd, "validate") == 0) {
        fprintf(f,
                "usage: mlstage validate FILE.yml... [OPTIONS]\n\n"
                "Parses task and pipeline manifests and checks their inputs against the\n"
                "plugins' schemas. Nothing runs: the backend's own requirements (an Azure\n"
                "workspace, say) are checked by `run --dry-run`.\n\n%s",
                usage_validate);
    } else if (strcmp(cmd, "plugins") == 0) {
        fprintf(f, "usage: mlstage plugins [--output json] [--plugin-path DIR]\n\n"
                   "Lists the plugins found: name, version, ABI, summary and inputs.\n");
    } else if (strcmp(cmd, "provenance") == 0) {
        fprintf(f, "usage: mlstage provenance verify PATH [--output json]\n\n"
                   "Re-hashes PATH (an artefact, or its .intoto.json statement) and compares\n"
                   "every file with the statement. Exit 0 when all match, 1 on any mismatch,\n"
                   "2 when there is no readable statement.\n");
    } else if (strcmp(cmd, "models") == 0) {
        fprintf(f, "usage: mlstage models list [NAME] [--output json] [--workspace DIR]\n"
                   "       mlstage models show NAME[:VERSION|@ALIAS] [--output json]\n\n"
                   "Shows the local model registry in .mlstage/registry.\n");
    } else {
        fputs(usage_main, f);
    }
}

void cli_print_usage(const char *cmd)
{
    print_usage(stdout, cmd);
}

/* ---- options ----------------------------------------------------------- */

enum {
    OPT_SET = 1000,
    OPT_BACKEND,
    OPT_DRY_RUN,
    OPT_WORKSPACE,
    OPT_OUTPUT,
    OPT_CI,
    OPT_PLUGIN_PATH,
    OPT_ONLY,
    OPT_FROM,
};

static const struct option long_opts[] = {
    {"set", required_argument, NULL, OPT_SET},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"workspace", required_argument, NULL, OPT_WORKSPACE},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"ci", required_argument, NULL, OPT_CI},
    {"plugin-path", required_argument, NULL, OPT_PLUGIN_PATH},
    {"only", required_argument, NULL, OPT_ONLY},
    {"from", required_argument, NULL, OPT_FROM},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Prints a usage error and returns exit code 2. `cmd` is the command ("run"), or NULL. */
static int usage_error(const char *cmd, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("mlstage: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'mlstage %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return 2;
}

static int valid_var_name(const char *s, size_t n)
{
    if (n == 0 || n > 128 ||
        !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* The long name of option `opt`, for messages. */
static const char *opt_name(int opt)
{
    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == opt)
            return lo->name;
    return "?";
}

/*
 * Whether `cmd` takes option `opt` (an OPT_* or 'v', 'q', 'h'). Options that
 * only say where things are and how to talk (--workspace, --plugin-path,
 * --output, --ci, -v, -q) go with every command, so that one set of them
 * can prefix any call; an option that changes what a command does is refused
 * where the command would ignore it, so that `run --only deploy` does not
 * quietly run the whole task.
 */
static int cmd_takes(const char *cmd, int opt)
{
    if (opt != OPT_SET && opt != OPT_BACKEND && opt != OPT_DRY_RUN && opt != OPT_ONLY &&
        opt != OPT_FROM)
        return 1;
    if (strcmp(cmd, "pipeline") == 0)
        return 1;
    if (strcmp(cmd, "run") == 0)
        return opt != OPT_ONLY && opt != OPT_FROM;
    if (strcmp(cmd, "validate") == 0)
        return opt == OPT_SET; /* it checks the manifests as written: nothing runs anywhere */
    return 0;
}

/* Parses argv[first..]; returns 0, or an exit code (2 for usage errors, -1 for --help shown). */
int cli_parse_opts(int argc, char **argv, const char *cmd, struct cli_opts *o)
{
    const char *cmd_sp = cmd;
    o->vars = json_object_new_object();
    o->ci = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":vqh", long_opts, NULL)) != -1) {
        if (c != ':' && c != '?' && !cmd_takes(cmd, c))
            return usage_error(cmd_sp, "%s does not take --%s", cmd, opt_name(c));
        switch (c) {
        case OPT_SET: {
            const char *eq = strchr(optarg, '=');
            if (!eq || !valid_var_name(optarg, (size_t)(eq - optarg)))
                return usage_error(cmd_sp,
                                   "--set expects NAME=VALUE with NAME matching "
                                   "[A-Za-z_][A-Za-z0-9_]*, got \"%s\"",
                                   optarg);
            char name[160];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - optarg), optarg);
            json_object_object_add(o->vars, name, json_object_new_string(eq + 1));
            break;
        }
        case OPT_BACKEND:
            if (strcmp(optarg, "local") != 0 && strcmp(optarg, "azureml") != 0)
                return usage_error(cmd_sp, "--backend expects local or azureml, got \"%s\"",
                                   optarg);
            o->backend = optarg;
            break;
        case OPT_DRY_RUN: o->dry_run = 1; break;
        case OPT_WORKSPACE: o->workspace = optarg; break;
        case OPT_OUTPUT:
            if (strcmp(optarg, "json") == 0)
                o->json = 1;
            else if (strcmp(optarg, "text") == 0)
                o->json = 0;
            else
                return usage_error(cmd_sp, "--output expects text or json, got \"%s\"", optarg);
            break;
        case OPT_CI:
            if (strcmp(optarg, "auto") == 0) {
                o->ci = -1;
            } else if ((o->ci = ci_parse(optarg)) < 0) {
                return usage_error(
                    cmd_sp, "--ci expects auto, azure-devops, github or none, got \"%s\"", optarg);
            }
            break;
        case OPT_PLUGIN_PATH:
            if (o->n_plugin_paths + 1 < sizeof(o->plugin_paths) / sizeof(o->plugin_paths[0]))
                o->plugin_paths[o->n_plugin_paths++] = optarg;
            break;
        case OPT_ONLY:
            if (o->n_only + 1 < sizeof(o->only) / sizeof(o->only[0]))
                o->only[o->n_only++] = optarg;
            break;
        case OPT_FROM: o->from = optarg; break;
        case 'v': o->verbose = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': print_usage(stdout, cmd); return -1;
        case ':': return usage_error(cmd_sp, "option %s needs a value", argv[optind - 1]);
        default: return usage_error(cmd_sp, "unknown option %s", argv[optind - 1]);
        }
    }
    o->args = argv + optind;
    o->n_args = argc - optind;
    if (o->ci < 0)
        o->ci = ci_detect(env_get);
    int color = !o->json && isatty(2) && !getenv("NO_COLOR") && o->ci == CI_NONE;
    enum mlstage_log_level level = o->quiet     ? MLSTAGE_LOG_WARN
                                   : o->verbose ? MLSTAGE_LOG_DEBUG
                                                : MLSTAGE_LOG_INFO;
    log_configure(level, (enum ci_kind)o->ci, color);
    log_set_ci_stream(o->json ? stderr : NULL);
    return 0;
}

void cli_free_opts(struct cli_opts *o)
{
    json_object_put(o->vars);
    free(o->workspace_abs);
}

/* The well-known secret environment variables are masked in every command. */
void cli_mask_known_secrets(void)
{
    for (const char *const *n = stage_known_secret_env; *n; n++) {
        const char *v = getenv(*n);
        if (v && *v)
            mask_add(v);
    }
}

int cli_resolve_workspace(struct cli_opts *o)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return usage_error(NULL, "cannot read the current folder: %s", strerror(errno));
    if (o->workspace) {
        if (mlstage_mkdirs(o->workspace, 0755) != 0) {
            log_msg(MLSTAGE_LOG_ERROR, "--workspace %s: cannot create it: %s", o->workspace,
                    strerror(errno));
            return 2;
        }
        char real[PATH_MAX];
        if (!realpath(o->workspace, real)) {
            log_msg(MLSTAGE_LOG_ERROR, "--workspace %s: %s", o->workspace, strerror(errno));
            return 2;
        }
        o->workspace_abs = xstrdup(real);
        return 0;
    }
    char *top = gitinfo_find_toplevel(cwd);
    o->workspace_abs = top ? top : xstrdup(cwd);
    return 0;
}

void cli_git_start(struct cli_git *g)
{
    char cwd[PATH_MAX];
    g->warned = 0;
    g->job = gitinfo_start(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
}

int cli_git_poll_fd(void *ud)
{
    return gitinfo_poll_fd(((struct cli_git *)ud)->job);
}

json_object *cli_git_get(void *ud)
{
    struct cli_git *g = ud;
    struct mls_err err = {0};
    json_object *git = gitinfo_wait(g->job, &err);
    if (!git && !g->warned) {
        g->warned = 1;
        if (err.code)
            log_msg(MLSTAGE_LOG_WARN, "cannot read git metadata: %s; provenance records git: null",
                    err.msg);
        else
            log_msg(MLSTAGE_LOG_WARN, "the current folder is not in a git repository (or it has "
                                      "no commit): provenance records git: null");
    }
    return git;
}

void cli_git_free(struct cli_git *g)
{
    gitinfo_job_free(g->job);
    g->job = NULL;
}

void cli_print_json(json_object *doc)
{
    const char *text = json_object_to_json_string_ext(doc, MLS_JSON_PRETTY);
    size_t len;
    char *masked = mask_apply(text, strlen(text), &len);
    fwrite(masked, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(masked);
}

/* A JSON document for a command that failed before it produced anything. */
static void print_json_error(int code, const char *msg)
{
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "status",
                           json_object_new_string(code == MLSTAGE_EPLUGIN || code == MLSTAGE_EINPUT
                                                      ? "invalid"
                                                      : "failed"));
    json_object_object_add(doc, "exit_code", json_object_new_int(mlstage_exit_code(code)));
    json_object_object_add(doc, "error", json_object_new_string(msg));
    cli_print_json(doc);
    json_object_put(doc);
}

void cli_fail(const struct cli_opts *o, int code, const char *msg)
{
    log_msg(MLSTAGE_LOG_ERROR, "%s", msg);
    if (o->json)
        print_json_error(code, msg);
}

/* ---- run --------------------------------------------------------------- */

static void print_stage_text(const struct cli_opts *o, const struct stage_result *res,
                             const char *label)
{
    json_object *rec = res->record, *v = NULL;
    double secs = 0;
    if (json_object_object_get_ex(rec, "duration_s", &v))
        secs = json_object_get_double(v);
    const char *status = "failed";
    if (json_object_object_get_ex(rec, "status", &v))
        status = json_object_get_string(v);
    log_msg(res->code ? MLSTAGE_LOG_ERROR : MLSTAGE_LOG_INFO, "%s %s in %.2f s (exit %d)", label,
            status, secs, mlstage_exit_code(res->code));
    json_object *outputs = NULL;
    json_object_object_get_ex(rec, "outputs", &outputs);
    /* Outputs as KEY=VALUE on stdout outside CI (runners get their own syntax). */
    if (outputs && o->ci == CI_NONE) {
        json_object_object_foreach(outputs, key, val)
        {
            const char *s = json_object_get_string(val);
            char *masked = mask_apply(s, strlen(s), NULL);
            printf("%s=%s\n", key, masked);
            free(masked);
        }
        fflush(stdout);
    }
    json_object *arts = NULL;
    if (json_object_object_get_ex(rec, "artifacts", &arts)) {
        size_t n = json_object_array_length(arts);
        for (size_t i = 0; i < n; i++) {
            json_object *a = json_object_array_get_idx(arts, i), *p = NULL, *s = NULL, *st = NULL;
            json_object_object_get_ex(a, "path", &p);
            json_object_object_get_ex(a, "subjects", &s);
            json_object_object_get_ex(a, "statement", &st);
            log_msg(MLSTAGE_LOG_INFO, "artefact %s (%zu file%s) -> %s", json_object_get_string(p),
                    json_object_array_length(s), json_object_array_length(s) == 1 ? "" : "s",
                    json_object_get_string(st));
        }
    }
    log_msg(MLSTAGE_LOG_DEBUG, "run record: %s/run.json", res->run_dir);
}

static int cmd_run(int argc, char **argv)
{
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc, argv, "run", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    if (o.n_args != 1) {
        cli_free_opts(&o);
        if (o.n_args)
            return usage_error("run", "run takes one manifest, got %d arguments", o.n_args);
        return usage_error("run", "run needs a task manifest");
    }
    cli_mask_known_secrets();
    struct mls_err err = {0};
    struct task_manifest *task = NULL;
    struct stage_result res = {0};
    json_object *ci = NULL;
    char **dirs = NULL;
    struct cli_git git;
    cli_git_start(&git);
    rc = manifest_task_load(o.args[0], &task, &err);
    if (rc) {
        cli_fail(&o, rc, err.msg);
        rc = mlstage_exit_code(rc);
        goto done;
    }
    if ((rc = cli_resolve_workspace(&o)) != 0)
        goto done;
    ci = ci_info((enum ci_kind)o.ci, env_get);
    dirs = host_dirs((const char *const *)o.plugin_paths);
    struct stage_opts so = {
        .dry_run = o.dry_run,
        .vars = o.vars,
        .backend = o.backend,
        .workspace = o.workspace_abs,
        .plugin_dirs = dirs,
        .ci = (enum ci_kind)o.ci,
        .git = cli_git_get,
        .git_poll_fd = cli_git_poll_fd,
        .git_ud = &git,
        .ci_info = ci,
    };
    stage_run(&so, task, &res);
    if (!res.record) {
        cli_fail(&o, res.code, res.message ? res.message : mlstage_strerror(res.code));
    } else if (o.json) {
        json_object_object_add(res.record, "run_dir", json_object_new_string(res.run_dir));
        cli_print_json(res.record);
    } else {
        print_stage_text(&o, &res, task->task);
    }
    rc = mlstage_exit_code(res.code);
done:
    stage_result_free(&res);
    manifest_task_free(task);
    cli_git_free(&git);
    json_object_put(ci);
    host_dirs_free(dirs);
    cli_free_opts(&o);
    return rc;
}

/* ---- validate ---------------------------------------------------------- */

/* Declared secrets that are not set validate as placeholders: CI validates without them. */
static json_object *placeholder_secrets(json_object *declared)
{
    json_object *s = json_object_new_object();
    size_t n = json_object_array_length(declared);
    for (size_t i = 0; i < n; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(declared, i));
        char ph[256];
        snprintf(ph, sizeof(ph), "<secret %s>", name);
        json_object_object_add(s, name, json_object_new_string(ph));
    }
    return s;
}

int cli_validate_task(const struct cli_opts *o, char **dirs, json_object *git,
                      struct task_manifest *task, json_object *stages, json_object *report)
{
    struct mls_err err = {0};
    char *path = NULL;
    json_object *info = NULL, *inputs = NULL, *validated = NULL, *secrets = NULL;
    char *bad = NULL;
    int rc = host_find(dirs, task->plugin, &path, &err);
    if (rc)
        goto done;
    rc = host_probe(path, &info, &err);
    if (rc)
        goto done;
    secrets = placeholder_secrets(task->secrets);
    struct expand_env env = {
        .getenv_fn = env_get,
        .vars = o->vars,
        .secrets = secrets,
        .declared = task->secrets,
        .run_id = "<run.id>",
        .run_dir = "<run.dir>",
        .outputs_dir = "<run.outputs_dir>",
        .git = git,
        .stages = stages,
        .placeholders = 1,
    };
    char pointer[1024];
    snprintf(pointer, sizeof(pointer), "%s/inputs", task->pointer);
    rc = expand_tree(&env, task->doc, pointer, task->inputs, &inputs, &err);
    if (rc)
        goto done;
    json_object *schema = NULL;
    json_object_object_get_ex(info, "inputs", &schema);
    /* Like a dry run, validation has placeholders where stage outputs and secrets go. */
    json_object_put(schema_hold_placeholders(inputs, schema));
    rc = schema_validate(schema, inputs, "inputs", &validated, &bad, &err);
    if (rc) {
        char ptr[1200];
        snprintf(ptr, sizeof(ptr), "%s/inputs%s", task->pointer, bad ? bad : "");
        int line = 0, col = 0;
        if (manifest_mark(task->doc, ptr, &line, &col, NULL) == 0) {
            char msg[sizeof(err.msg)];
            snprintf(msg, sizeof(msg), "%s", err.msg);
            err_set(&err, rc, "%s:%d:%d: %s", task->doc->path, line, col, msg);
        }
    }
done:
    if (report) {
        json_object_object_add(report, "task", json_object_new_string(task->task));
        json_object_object_add(report, "plugin", json_object_new_string(task->plugin));
        json_object *v = NULL;
        if (info && json_object_object_get_ex(info, "version", &v))
            json_object_object_add(report, "plugin_version", json_object_get(v));
        json_object_object_add(report, "ok", json_object_new_boolean(rc == 0));
        if (rc) {
            json_object_object_add(report, "error", json_object_new_string(err.msg));
            json_object_object_add(report, "exit_code", json_object_new_int(mlstage_exit_code(rc)));
        }
    }
    if (rc)
        log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
    free(path);
    free(bad);
    json_object_put(info);
    json_object_put(inputs);
    json_object_put(validated);
    json_object_put(secrets);
    return rc;
}

/* Worse of two results for a command that checks several things: input errors first. */
static int worse(int a, int b)
{
    if (a == MLSTAGE_EINPUT || b == MLSTAGE_EINPUT)
        return MLSTAGE_EINPUT;
    return a ? a : b;
}

static int cmd_validate(int argc, char **argv)
{
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc, argv, "validate", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    if (o.n_args < 1) {
        cli_free_opts(&o);
        return usage_error("validate", "validate needs at least one manifest");
    }
    cli_mask_known_secrets();
    if ((rc = cli_resolve_workspace(&o)) != 0) {
        cli_free_opts(&o);
        return rc;
    }
    struct cli_git g;
    cli_git_start(&g);
    json_object *git = gitinfo_wait(g.job, NULL);
    char **dirs = host_dirs((const char *const *)o.plugin_paths);
    json_object *reports = json_object_new_array();
    int result = 0;
    for (int i = 0; i < o.n_args; i++) {
        const char *file = o.args[i];
        json_object *report = json_object_new_object();
        json_object_object_add(report, "file", json_object_new_string(file));
        int one = cli_validate_file(&o, dirs, git, file, report);
        if (one == 0 && !o.json)
            log_msg(MLSTAGE_LOG_INFO, "%s: ok", file);
        result = worse(result, one);
        json_object_array_add(reports, report);
    }
    if (o.json) {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "ok", json_object_new_boolean(result == 0));
        json_object_object_add(doc, "exit_code", json_object_new_int(mlstage_exit_code(result)));
        json_object_object_add(doc, "files", reports);
        cli_print_json(doc);
        json_object_put(doc);
    } else {
        json_object_put(reports);
    }
    cli_git_free(&g);
    host_dirs_free(dirs);
    cli_free_opts(&o);
    return mlstage_exit_code(result);
}

/* ---- plugins ----------------------------------------------------------- */

static int cmd_plugins(int argc, char **argv)
{
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc, argv, "plugins", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    if (o.n_args) {
        cli_free_opts(&o);
        return usage_error("plugins", "plugins takes no arguments");
    }
    char **dirs = host_dirs((const char *const *)o.plugin_paths);
    json_object *found = json_object_new_array(), *broken = json_object_new_array();
    json_object *seen = json_object_new_object();
    for (char **d = dirs; *d; d++) {
        struct dirent **names = NULL;
        int n = scandir(*d, &names, NULL, alphasort);
        for (int i = 0; i < n; i++) {
            const char *fn = names[i]->d_name;
            size_t len = strlen(fn);
            if (len > 3 && strcmp(fn + len - 3, ".so") == 0) {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(len - 3), fn);
                if (!json_object_object_get_ex(seen, name, NULL)) {
                    json_object_object_add(seen, name, NULL);
                    char path[PATH_MAX];
                    snprintf(path, sizeof(path), "%s/%s", *d, fn);
                    json_object *info = NULL;
                    struct mls_err err = {0};
                    if (host_probe(path, &info, &err) == 0) {
                        json_object_array_add(found, info);
                    } else {
                        json_object *b = json_object_new_object();
                        json_object_object_add(b, "name", json_object_new_string(name));
                        json_object_object_add(b, "path", json_object_new_string(path));
                        json_object_object_add(b, "error", json_object_new_string(err.msg));
                        json_object_array_add(broken, b);
                    }
                }
            }
            free(names[i]);
        }
        free(names);
    }
    if (o.json) {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "abi_version", json_object_new_int(MLSTAGE_ABI_VERSION));
        json_object *jd = json_object_new_array();
        for (char **d = dirs; *d; d++)
            json_object_array_add(jd, json_object_new_string(*d));
        json_object_object_add(doc, "search_path", jd);
        json_object_object_add(doc, "plugins", json_object_get(found));
        json_object_object_add(doc, "broken", json_object_get(broken));
        cli_print_json(doc);
        json_object_put(doc);
    } else {
        size_t n = json_object_array_length(found);
        if (n == 0)
            fprintf(stderr, "no plugins found\n");
        for (size_t i = 0; i < n; i++) {
            json_object *p = json_object_array_get_idx(found, i), *v = NULL;
            const char *name = "", *version = "", *summary = "";
            if (json_object_object_get_ex(p, "name", &v))
                name = json_object_get_string(v);
            if (json_object_object_get_ex(p, "version", &v))
                version = json_object_get_string(v);
            if (json_object_object_get_ex(p, "summary", &v))
                summary = json_object_get_string(v);
            printf("%-14s %-8s %s\n", name, version, summary);
        }
        size_t nb = json_object_array_length(broken);
        for (size_t i = 0; i < nb; i++) {
            json_object *b = json_object_array_get_idx(broken, i), *v = NULL;
            json_object_object_get_ex(b, "error", &v);
            log_msg(MLSTAGE_LOG_ERROR, "%s", json_object_get_string(v));
        }
    }
    rc = json_object_array_length(broken) ? 3 : 0;
    json_object_put(found);
    json_object_put(broken);
    json_object_put(seen);
    host_dirs_free(dirs);
    cli_free_opts(&o);
    return rc;
}

/* ---- provenance -------------------------------------------------------- */

static int cmd_provenance(int argc, char **argv)
{
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc, argv, "provenance", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    if (o.n_args != 2 || strcmp(o.args[0], "verify") != 0) {
        cli_free_opts(&o);
        return usage_error("provenance", "usage: mlstage provenance verify PATH");
    }
    json_object *report = NULL;
    struct mls_err err = {0};
    rc = prov_verify(o.args[1], &report, &err);
    if (o.json) {
        if (!report) {
            report = json_object_new_object();
            json_object_object_add(report, "ok", json_object_new_boolean(0));
        }
        if (rc)
            json_object_object_add(report, "error", json_object_new_string(err.msg));
        cli_print_json(report);
    } else if (rc) {
        log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
    } else {
        json_object *subjects = NULL;
        json_object_object_get_ex(report, "subjects", &subjects);
        printf("ok: %s (%zu file%s match their statement)\n", o.args[1],
               json_object_array_length(subjects),
               json_object_array_length(subjects) == 1 ? "" : "s");
    }
    json_object_put(report);
    cli_free_opts(&o);
    return mlstage_exit_code(rc);
}

/* ---- dispatch ---------------------------------------------------------- */

static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"run", cmd_run},         {"pipeline", cli_cmd_pipeline}, {"validate", cmd_validate},
    {"plugins", cmd_plugins}, {"provenance", cmd_provenance}, {"models", cli_cmd_models},
};

int mlstage_cli_main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        print_usage(stderr, NULL);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("mlstage %s (plugin ABI %u)\n", MLSTAGE_VERSION, MLSTAGE_ABI_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout, argc > 2 ? argv[2] : NULL);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mlstage: unknown command \"%s\"\n\n", argv[1]);
    print_usage(stderr, NULL);
    return 2;
}
