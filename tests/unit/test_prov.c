/* test_prov.c — artefact digests, provenance statements and their verification. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/version.h>

#include "ci.h"
#include "gitinfo.h"
#include "mask.h"
#include "prov.h"
#include "testutil.h"

static const char *const git_env[] = {
    "GIT_AUTHOR_NAME=Ada Author",
    "GIT_AUTHOR_EMAIL=ada@example.com",
    "GIT_AUTHOR_DATE=2024-01-02T03:04:05+02:00",
    "GIT_COMMITTER_NAME=Cy Committer",
    "GIT_COMMITTER_EMAIL=cy@example.com",
    "GIT_COMMITTER_DATE=2024-01-03T04:05:06+00:00",
    "GIT_CONFIG_NOSYSTEM=1",
    NULL,
};

/* Runs a shell command (in `dir`), asserts success, returns stdout without the trailing newline. */
static char *sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sh(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmdline = NULL;
    if (vasprintf(&cmdline, fmt, ap) < 0)
        abort();
    va_end(ap);
    struct tu_cmd cmd;
    CU_ASSERT_EQUAL_FATAL(tu_sh(cmdline, git_env, dir, &cmd), 0);
    TU_ASSERT_EXIT(&cmd, 0);
    char *out = strdup(cmd.out);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    tu_cmd_free(&cmd);
    free(cmdline);
    return out;
}

static char *sha256sum_of(const char *path)
{
    char *out = sh(NULL, "sha256sum '%s'", path);
    out[MLSTAGE_SHA256_HEX_LEN] = '\0';
    return out;
}

/*
 * A folder holding model/ with files at two depths, including names that
 * sort differently per level and as whole paths ("a.txt" < "a/x" in C order).
 */
static char *make_model(void)
{
    char *dir = tu_tmpdir();
    free(sh(dir, "mkdir -p model/a model/sub && printf 'weights' > model/w.bin && "
                 "printf 'first' > model/a.txt && printf 'x' > model/a/x && "
                 "printf 'deep' > model/sub/b.bin"));
    return dir;
}

static const char *subject_name_at(json_object *subjects, size_t i)
{
    json_object *s = json_object_array_get_idx(subjects, i);
    return json_object_get_string(json_object_object_get(s, "name"));
}

static const char *subject_sha_at(json_object *subjects, size_t i)
{
    json_object *s = json_object_array_get_idx(subjects, i);
    return json_object_get_string(
        json_object_object_get(json_object_object_get(s, "digest"), "sha256"));
}

/* Follows a "/"-separated path of object keys and array indexes. */
static json_object *at(json_object *o, const char *pointer)
{
    char *copy = strdup(pointer), *save = NULL;
    for (char *k = strtok_r(copy, "/", &save); k && o; k = strtok_r(NULL, "/", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(k));
        else if (!json_object_object_get_ex(o, k, &o))
            o = NULL;
    }
    free(copy);
    return o;
}

static const char *at_str(json_object *o, const char *pointer)
{
    json_object *v = at(o, pointer);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

#define ASSERT_AT_STR(o, pointer, expected)                                                        \
    do {                                                                                           \
        const char *got_ = at_str((o), (pointer));                                                 \
        if (!got_ || strcmp(got_, (expected)) != 0)                                                \
            fprintf(stderr, "\n%s: expected \"%s\", got \"%s\"\n", (pointer), (expected),          \
                    got_ ? got_ : "(absent)");                                                     \
        CU_ASSERT_PTR_NOT_NULL(got_);                                                              \
        if (got_)                                                                                  \
            CU_ASSERT_STRING_EQUAL(got_, (expected));                                              \
    } while (0)

/* ---- hashing -------------------------------------------------------------- */

static void file_artefact_has_one_subject_with_the_sha256sum_digest(void)
{
    char *dir = make_model();
    char *path = tu_fmt("%s/model/w.bin", dir);
    char *expected = sha256sum_of(path);
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(path, &subjects, &err), 0);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(subjects), 1);
    CU_ASSERT_STRING_EQUAL(subject_name_at(subjects, 0), "w.bin");
    CU_ASSERT_STRING_EQUAL(subject_sha_at(subjects, 0), expected);
    CU_ASSERT_EQUAL(json_object_get_int64(at(subjects, "0/annotations/size")), 7);
    json_object_put(subjects);
    free(expected);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void directory_artefact_lists_every_file_sorted_relative_to_its_parent(void)
{
    char *dir = make_model();
    char *path = tu_fmt("%s/model/", dir); /* the trailing '/' changes nothing */
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(path, &subjects, &err), 0);
    static const char *const names[] = {"model/a.txt", "model/a/x", "model/sub/b.bin",
                                        "model/w.bin"};
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(subjects), 4);
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_STRING_EQUAL(subject_name_at(subjects, i), names[i]);
        char *file = tu_fmt("%s/%s", dir, names[i]);
        char *expected = sha256sum_of(file);
        CU_ASSERT_STRING_EQUAL(subject_sha_at(subjects, i), expected);
        free(expected);
        free(file);
    }
    json_object_put(subjects);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void nested_statements_are_left_out_but_lone_statement_named_files_are_not(void)
{
    char *dir = make_model();
    free(sh(dir, "echo '{}' > model/w.bin.intoto.json && echo '{}' > model/sub.intoto.json && "
                 "echo lone > model/lone.intoto.json"));
    char *path = tu_fmt("%s/model", dir);
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(path, &subjects, &err), 0);
    const char *s = json_object_to_json_string_ext(subjects, JSON_C_TO_STRING_NOSLASHESCAPE);
    TU_ASSERT_NOT_CONTAINS(s, "w.bin.intoto.json");
    TU_ASSERT_NOT_CONTAINS(s, "sub.intoto.json");
    TU_ASSERT_CONTAINS(s, "\"model/lone.intoto.json\"");
    CU_ASSERT_EQUAL(json_object_array_length(subjects), 5);
    json_object_put(subjects);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void symlinks_special_files_empty_and_missing_artefacts_are_refused(void)
{
    char *dir = make_model();
    struct mls_err err = {0};
    json_object *subjects = (json_object *)1;

    free(sh(dir, "ln -s w.bin model/link.bin"));
    char *model = tu_fmt("%s/model", dir);
    CU_ASSERT_EQUAL(prov_hash_artifact(model, &subjects, &err), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(subjects);
    TU_ASSERT_CONTAINS(err.msg, "model/link.bin is a symbolic link");

    char *link = tu_fmt("%s/model/link.bin", dir);
    CU_ASSERT_EQUAL(prov_hash_artifact(link, &subjects, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "symbolic link");

    free(sh(dir, "rm model/link.bin && mkfifo model/pipe"));
    CU_ASSERT_EQUAL(prov_hash_artifact(model, &subjects, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "model/pipe is not a regular file");

    free(sh(dir, "mkdir empty"));
    char *empty = tu_fmt("%s/empty", dir);
    CU_ASSERT_EQUAL(prov_hash_artifact(empty, &subjects, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "holds no files");

    char *missing = tu_fmt("%s/absent.bin", dir);
    CU_ASSERT_EQUAL(prov_hash_artifact(missing, &subjects, &err), MLSTAGE_ENOTFOUND);
    CU_ASSERT_PTR_NULL(subjects);

    free(missing);
    free(empty);
    free(link);
    free(model);
    tu_rm_rf(dir);
    free(dir);
}

static void statement_path_sits_beside_the_artefact(void)
{
    char *p = prov_statement_path("out/model/");
    CU_ASSERT_STRING_EQUAL(p, "out/model.intoto.json");
    free(p);
    p = prov_statement_path("/abs/model.pkl");
    CU_ASSERT_STRING_EQUAL(p, "/abs/model.pkl.intoto.json");
    free(p);
}

/* ---- statements ----------------------------------------------------------- */

static const char *gh_getenv(const char *name)
{
    static const char *const vars[][2] = {
        {"GITHUB_SERVER_URL", "https://github.com"},
        {"GITHUB_REPOSITORY", "org/repo"},
        {"GITHUB_RUN_ID", "4242"},
        {"GITHUB_RUN_ATTEMPT", "2"},
        {"GITHUB_REF", "refs/heads/main"},
        {"GITHUB_SHA", "abc"},
        {"GITHUB_ACTOR", "octocat"},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strcmp(name, vars[i][0]) == 0)
            return vars[i][1];
    return NULL;
}

static const char *no_getenv(const char *name)
{
    (void)name;
    return NULL;
}

struct fixture {
    char *repo;     /* a git repository holding tasks/train.yml and model/ */
    char *manifest; /* absolute path of tasks/train.yml */
    char *model;    /* absolute path of model/ */
    char manifest_sha[MLSTAGE_SHA256_HEX_LEN + 1];
    json_object *git;
    json_object *inputs;
    json_object *vars;
    struct prov_meta meta;
};

static void fixture_init(struct fixture *f, json_object *ci)
{
    memset(f, 0, sizeof(*f));
    f->repo = make_model();
    free(sh(f->repo, "printf 'model/\\n' > .gitignore && mkdir tasks && "
                     "printf 'task: train\\nplugin: train\\n' > tasks/train.yml && "
                     "git -c init.defaultBranch=main init -q . && git add . && "
                     "git -c commit.gpgsign=false commit -q -m 'add task'"));
    f->manifest = tu_fmt("%s/tasks/train.yml", f->repo);
    f->model = tu_fmt("%s/model", f->repo);
    CU_ASSERT_EQUAL(mlstage_sha256_file(f->manifest, f->manifest_sha, NULL), 0);
    struct mls_err err = {0};
    CU_ASSERT_EQUAL(gitinfo_collect(f->repo, &f->git, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(f->git);
    f->inputs = json_tokener_parse("{\"command\": \"python3 train.py --alpha 0.5\", "
                                   "\"model_dir\": \"model\"}");
    f->vars = json_tokener_parse("{\"alpha\": \"0.5\"}");
    f->meta = (struct prov_meta){
        .task = "train",
        .manifest_path = f->manifest,
        .manifest_sha256 = f->manifest_sha,
        .plugin = "train",
        .plugin_version = "1.2.3",
        .backend = "local",
        .inputs = f->inputs,
        .vars = f->vars,
        .git = f->git,
        .ci = ci,
        .run_id = "20261123-092156-abcd",
        .status = "succeeded",
        .started = 1700000000.25,
        .finished = 1700000090.5,
    };
}

static void fixture_free(struct fixture *f)
{
    json_object_put(f->git);
    json_object_put(f->inputs);
    json_object_put(f->vars);
    json_object_put(f->meta.ci);
    tu_rm_rf(f->repo);
    free(f->repo);
    free(f->manifest);
    free(f->model);
}

static void statement_records_subjects_commit_manifest_and_run(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    char *head = sh(f.repo, "git rev-parse HEAD");
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(f.model, &subjects, &err), 0);
    json_object *st = prov_statement_new(subjects, &f.meta);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);

    ASSERT_AT_STR(st, "_type", "https://in-toto.io/Statement/v1");
    ASSERT_AT_STR(st, "predicateType", "https://slsa.dev/provenance/v1");
    ASSERT_AT_STR(st, "subject/0/name", "model/a.txt");
    char *w = tu_fmt("%s/model/w.bin", f.repo);
    char *w_sha = sha256sum_of(w);
    ASSERT_AT_STR(st, "subject/3/name", "model/w.bin");
    ASSERT_AT_STR(st, "subject/3/digest/sha256", w_sha);

    const char *bd = "predicate/buildDefinition";
    json_object *def = at(st, bd);
    ASSERT_AT_STR(def, "buildType", PROV_BUILD_TYPE);
    ASSERT_AT_STR(def, "externalParameters/task", "train");
    ASSERT_AT_STR(def, "externalParameters/manifest", "tasks/train.yml");
    ASSERT_AT_STR(def, "externalParameters/plugin", "train");
    ASSERT_AT_STR(def, "externalParameters/backend", "local");
    ASSERT_AT_STR(def, "externalParameters/inputs/model_dir", "model");
    ASSERT_AT_STR(def, "externalParameters/vars/alpha", "0.5");
    ASSERT_AT_STR(def, "internalParameters/plugin_version", "1.2.3");
    ASSERT_AT_STR(def, "internalParameters/mlstage_version", MLSTAGE_VERSION);
    ASSERT_AT_STR(def, "internalParameters/git/commit", head);

    char *top = realpath(f.repo, NULL);
    char *git_uri = tu_fmt("git+file://%s@refs/heads/main", top);
    ASSERT_AT_STR(def, "resolvedDependencies/0/uri", git_uri);
    ASSERT_AT_STR(def, "resolvedDependencies/0/digest/gitCommit", head);
    ASSERT_AT_STR(def, "resolvedDependencies/0/annotations/branch", "main");
    CU_ASSERT_FALSE(json_object_get_boolean(at(def, "resolvedDependencies/0/annotations/dirty")));
    ASSERT_AT_STR(def, "resolvedDependencies/0/annotations/author/name", "Ada Author");
    ASSERT_AT_STR(def, "resolvedDependencies/0/annotations/committer/time", "2024-01-03T04:05:06Z");
    ASSERT_AT_STR(def, "resolvedDependencies/1/uri", "file:tasks/train.yml");
    char *manifest_sha = sha256sum_of(f.manifest);
    ASSERT_AT_STR(def, "resolvedDependencies/1/digest/sha256", manifest_sha);

    json_object *run = at(st, "predicate/runDetails");
    char *builder =
        tu_fmt("https://github.com/mlstage/mlstage/builders/local@v%s", MLSTAGE_VERSION);
    ASSERT_AT_STR(run, "builder/id", builder);
    ASSERT_AT_STR(run, "builder/version/mlstage", MLSTAGE_VERSION);
    ASSERT_AT_STR(run, "metadata/invocationId", "mlstage:run:20261123-092156-abcd");
    ASSERT_AT_STR(run, "metadata/startedOn", "2023-11-14T22:13:20.250Z");
    ASSERT_AT_STR(run, "metadata/finishedOn", "2023-11-14T22:14:50.500Z");
    ASSERT_AT_STR(run, "metadata/mlstage_status", "succeeded");

    free(builder);
    free(manifest_sha);
    free(git_uri);
    free(top);
    free(w_sha);
    free(w);
    json_object_put(st);
    json_object_put(subjects);
    free(head);
    fixture_free(&f);
}

static void ci_runs_name_the_platform_as_builder_and_the_run_as_invocation(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_GITHUB, gh_getenv));
    json_object *subjects = json_tokener_parse(
        "[{\"name\": \"m.bin\", \"digest\": {\"sha256\": "
        "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}}]");
    json_object *st = prov_statement_new(subjects, &f.meta);
    char *builder =
        tu_fmt("https://github.com/mlstage/mlstage/builders/github-actions@v%s", MLSTAGE_VERSION);
    ASSERT_AT_STR(st, "predicate/runDetails/builder/id", builder);
    ASSERT_AT_STR(st, "predicate/runDetails/metadata/invocationId",
                  "https://github.com/org/repo/actions/runs/4242/attempts/2#20261123-092156-abcd");
    ASSERT_AT_STR(st, "predicate/buildDefinition/internalParameters/ci/system", "github");
    free(builder);
    json_object_put(st);
    json_object_put(subjects);
    fixture_free(&f);
}

static void outside_a_repository_git_is_null_and_no_commit_is_claimed(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    f.meta.git = NULL;
    json_object *subjects = json_object_new_array();
    json_object *st = prov_statement_new(subjects, &f.meta);
    json_object *v = (json_object *)1;
    CU_ASSERT_TRUE(json_object_object_get_ex(at(st, "predicate/buildDefinition/internalParameters"),
                                             "git", &v));
    CU_ASSERT_PTR_NULL(v);
    const char *text = json_object_to_json_string(st);
    TU_ASSERT_NOT_CONTAINS(text, "gitCommit");
    /* Without a repository the manifest is recorded by its absolute path. */
    char *abs = realpath(f.manifest, NULL);
    char *uri = tu_fmt("file:%s", abs);
    ASSERT_AT_STR(st, "predicate/buildDefinition/resolvedDependencies/0/uri", uri);
    free(uri);
    free(abs);
    json_object_put(st);
    json_object_put(subjects);
    fixture_free(&f);
}

static void masked_secret_never_reaches_the_statement_file(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    const char *secret = "hunter2-s3cr3t/value";
    mask_add(secret);
    json_object_object_add(f.inputs, "webhook",
                           json_object_new_string("https://hooks.example/?k=hunter2-s3cr3t/value"));
    json_object_object_add(f.vars, "token", json_object_new_string(secret));
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(f.model, &subjects, &err), 0);
    CU_ASSERT_EQUAL_FATAL(prov_statement_write(f.model, subjects, &f.meta, &err), 0);
    char *path = tu_fmt("%s/model.intoto.json", f.repo);
    char *text = tu_read(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    TU_ASSERT_NOT_CONTAINS(text, "hunter2");
    TU_ASSERT_CONTAINS(text, "\"token\": \"***\"");
    TU_ASSERT_CONTAINS(text, "https://hooks.example/?k=***");
    /* Still a valid statement that verifies. */
    CU_ASSERT_EQUAL(prov_verify(f.model, NULL, &err), 0);
    mask_reset();
    free(text);
    free(path);
    json_object_put(subjects);
    fixture_free(&f);
}

/* ---- verification --------------------------------------------------------- */

/* Writes the statement of f->model and returns the subjects. */
static void stamp(struct fixture *f)
{
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(f->model, &subjects, &err), 0);
    int rc = prov_statement_write(f->model, subjects, &f->meta, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    json_object_put(subjects);
}

static int verify(const char *path, json_object **report, struct mls_err *err)
{
    int rc = prov_verify(path, report, err);
    if (rc && rc != MLSTAGE_EFAIL && rc != MLSTAGE_EINPUT)
        fprintf(stderr, "\nunexpected %d: %s\n", rc, err->msg);
    return rc;
}

static void untouched_artefact_verifies_by_its_path_or_its_statement(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    struct mls_err err = {0};
    json_object *report = NULL;
    CU_ASSERT_EQUAL(verify(f.model, &report, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(report);
    CU_ASSERT_TRUE(json_object_get_boolean(at(report, "ok")));
    CU_ASSERT_EQUAL(json_object_array_length(at(report, "subjects")), 4);
    ASSERT_AT_STR(report, "subjects/2/status", "ok");
    CU_ASSERT_EQUAL(json_object_array_length(at(report, "unexpected")), 0);
    json_object_put(report);

    char *st = tu_fmt("%s/model.intoto.json", f.repo);
    CU_ASSERT_EQUAL(verify(st, NULL, &err), 0);
    char *slash = tu_fmt("%s/model/", f.repo);
    CU_ASSERT_EQUAL(verify(slash, NULL, &err), 0);
    /* From another working directory, through a relative path. */
    char cwd[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir(f.repo), 0);
    CU_ASSERT_EQUAL(verify("model", NULL, &err), 0);
    CU_ASSERT_EQUAL_FATAL(chdir(cwd), 0);
    free(slash);
    free(st);
    fixture_free(&f);
}

static void one_changed_byte_fails_verification_and_names_the_file(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    free(sh(f.repo, "printf 'weightz' > model/w.bin"));
    struct mls_err err = {0};
    json_object *report = NULL;
    CU_ASSERT_EQUAL(verify(f.model, &report, &err), MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(err.msg, "model/w.bin");
    CU_ASSERT_PTR_NOT_NULL_FATAL(report);
    CU_ASSERT_FALSE(json_object_get_boolean(at(report, "ok")));
    ASSERT_AT_STR(report, "subjects/3/name", "model/w.bin");
    ASSERT_AT_STR(report, "subjects/3/status", "mismatch");
    ASSERT_AT_STR(report, "subjects/0/status", "ok");
    char *w = tu_fmt("%s/model/w.bin", f.repo);
    char *actual = sha256sum_of(w);
    ASSERT_AT_STR(report, "subjects/3/actual", actual);
    free(actual);
    free(w);
    json_object_put(report);
    fixture_free(&f);
}

static void removed_file_fails_verification_as_missing(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    free(sh(f.repo, "rm model/sub/b.bin"));
    struct mls_err err = {0};
    json_object *report = NULL;
    CU_ASSERT_EQUAL(verify(f.model, &report, &err), MLSTAGE_EFAIL);
    ASSERT_AT_STR(report, "subjects/2/name", "model/sub/b.bin");
    ASSERT_AT_STR(report, "subjects/2/status", "missing");
    json_object_put(report);
    fixture_free(&f);
}

static void added_file_fails_verification_as_unexpected(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    free(sh(f.repo, "printf 'extra' > model/sub/extra.py"));
    struct mls_err err = {0};
    json_object *report = NULL;
    CU_ASSERT_EQUAL(verify(f.model, &report, &err), MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(err.msg, "1 unexpected");
    ASSERT_AT_STR(report, "unexpected/0", "model/sub/extra.py");
    CU_ASSERT_EQUAL(json_object_array_length(at(report, "unexpected")), 1);
    ASSERT_AT_STR(report, "subjects/2/status", "ok");
    json_object_put(report);
    fixture_free(&f);
}

static void file_swapped_for_a_symlink_fails_verification(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    /* Same bytes behind the link: still not what was attested. */
    free(sh(f.repo, "cp model/w.bin w.copy && rm model/w.bin && ln -s ../w.copy model/w.bin"));
    struct mls_err err = {0};
    json_object *report = NULL;
    CU_ASSERT_EQUAL(verify(f.model, &report, &err), MLSTAGE_EFAIL);
    ASSERT_AT_STR(report, "subjects/3/status", "mismatch");
    json_object_put(report);
    fixture_free(&f);
}

static void nested_statement_written_later_does_not_break_verification(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    stamp(&f);
    struct mls_err err = {0};
    json_object *inner = NULL;
    char *sub = tu_fmt("%s/sub", f.model);
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(sub, &inner, &err), 0);
    CU_ASSERT_EQUAL_FATAL(prov_statement_write(sub, inner, &f.meta, &err), 0);
    CU_ASSERT_EQUAL(verify(f.model, NULL, &err), 0);
    CU_ASSERT_EQUAL(verify(sub, NULL, &err), 0);
    json_object_put(inner);
    free(sub);
    fixture_free(&f);
}

static void single_file_artefact_round_trips(void)
{
    struct fixture f;
    fixture_init(&f, ci_info(CI_NONE, no_getenv));
    char *w = tu_fmt("%s/w.bin", f.model);
    struct mls_err err = {0};
    json_object *subjects = NULL;
    CU_ASSERT_EQUAL_FATAL(prov_hash_artifact(w, &subjects, &err), 0);
    CU_ASSERT_EQUAL_FATAL(prov_statement_write(w, subjects, &f.meta, &err), 0);
    CU_ASSERT_EQUAL(verify(w, NULL, &err), 0);
    free(sh(f.model, "printf x >> w.bin"));
    CU_ASSERT_EQUAL(verify(w, NULL, &err), MLSTAGE_EFAIL);
    json_object_put(subjects);
    free(w);
    fixture_free(&f);
}

static void missing_invalid_or_foreign_statements_are_input_errors(void)
{
    char *dir = make_model();
    char *model = tu_fmt("%s/model", dir);
    char *st = tu_fmt("%s/model.intoto.json", dir);
    struct mls_err err = {0};
    json_object *report = (json_object *)1;

    CU_ASSERT_EQUAL(verify(model, &report, &err), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(report);

    CU_ASSERT_EQUAL(tu_write(st, "{ not json"), 0);
    CU_ASSERT_EQUAL(verify(model, NULL, &err), MLSTAGE_EINPUT);

    CU_ASSERT_EQUAL(tu_write(st, "{\"_type\": \"https://in-toto.io/Statement/v0.1\", "
                                 "\"predicateType\": \"https://slsa.dev/provenance/v1\", "
                                 "\"subject\": []}"),
                    0);
    CU_ASSERT_EQUAL(verify(model, NULL, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "_type");

    CU_ASSERT_EQUAL(tu_write(st, "{\"_type\": \"https://in-toto.io/Statement/v1\", "
                                 "\"predicateType\": \"https://spdx.dev/Document\", "
                                 "\"subject\": []}"),
                    0);
    CU_ASSERT_EQUAL(verify(model, NULL, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "predicateType");

    /* A subject that climbs out of the statement's folder is refused, not read. */
    CU_ASSERT_EQUAL(tu_write(st, "{\"_type\": \"https://in-toto.io/Statement/v1\", "
                                 "\"predicateType\": \"https://slsa.dev/provenance/v1\", "
                                 "\"subject\": [{\"name\": \"model/../../etc/passwd\", \"digest\": "
                                 "{\"sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca"
                                 "495991b7852b855\"}}]}"),
                    0);
    CU_ASSERT_EQUAL(verify(model, NULL, &err), MLSTAGE_EINPUT);

    CU_ASSERT_EQUAL(tu_write(st, "{\"_type\": \"https://in-toto.io/Statement/v1\", "
                                 "\"predicateType\": \"https://slsa.dev/provenance/v1\", "
                                 "\"subject\": [{\"name\": \"model/w.bin\", \"digest\": "
                                 "{\"sha1\": \"da39a3ee5e6b4b0d3255bfef95601890afd80709\"}}]}"),
                    0);
    CU_ASSERT_EQUAL(verify(model, NULL, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "sha256");

    free(st);
    free(model);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    char *home = tu_tmpdir();
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", home, 1);
    const char *tmp = getenv("TMPDIR");
    setenv("GIT_CEILING_DIRECTORIES", tmp && *tmp ? tmp : "/tmp", 1);

    static const struct tu_test tests[] = {
        {"a file artefact has one subject with the sha256sum digest",
         file_artefact_has_one_subject_with_the_sha256sum_digest},
        {"a directory artefact lists every file, sorted, relative to its parent",
         directory_artefact_lists_every_file_sorted_relative_to_its_parent},
        {"nested statements are left out, lone *.intoto.json files are not",
         nested_statements_are_left_out_but_lone_statement_named_files_are_not},
        {"symlinks, special files, empty folders and missing artefacts are refused",
         symlinks_special_files_empty_and_missing_artefacts_are_refused},
        {"the statement path sits beside the artefact", statement_path_sits_beside_the_artefact},
        {"a statement records subjects, the commit, the manifest and the run",
         statement_records_subjects_commit_manifest_and_run},
        {"CI runs name the platform as builder and the run as invocation",
         ci_runs_name_the_platform_as_builder_and_the_run_as_invocation},
        {"outside a repository git is null and no commit is claimed",
         outside_a_repository_git_is_null_and_no_commit_is_claimed},
        {"a masked secret never reaches the statement file",
         masked_secret_never_reaches_the_statement_file},
        {"an untouched artefact verifies by its path or its statement",
         untouched_artefact_verifies_by_its_path_or_its_statement},
        {"one changed byte fails verification and names the file",
         one_changed_byte_fails_verification_and_names_the_file},
        {"a removed file fails verification as missing",
         removed_file_fails_verification_as_missing},
        {"an added file fails verification as unexpected",
         added_file_fails_verification_as_unexpected},
        {"a file swapped for a symlink fails verification",
         file_swapped_for_a_symlink_fails_verification},
        {"a nested statement written later does not break verification",
         nested_statement_written_later_does_not_break_verification},
        {"a single-file artefact round-trips", single_file_artefact_round_trips},
        {"missing, invalid or foreign statements are input errors",
         missing_invalid_or_foreign_statements_are_input_errors},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "prov", tests);
    tu_rm_rf(home);
    free(home);
    return rc;
}
