/* test_gitinfo.c — git facts read with libgit2, checked against real repositories made with git. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gitinfo.h"
#include "testutil.h"

/* Fixed identities and dates, so every field can be asserted exactly. */
static const char *const git_env[] = {
    "GIT_AUTHOR_NAME=Ada Author",
    "GIT_AUTHOR_EMAIL=ada@example.com",
    "GIT_AUTHOR_DATE=2024-01-02T03:04:05+02:00",
    "GIT_COMMITTER_NAME=Cy Committer",
    "GIT_COMMITTER_EMAIL=cy@example.com",
    "GIT_COMMITTER_DATE=2024-01-03T04:05:06-05:30",
    "GIT_CONFIG_NOSYSTEM=1",
    NULL,
};

/* Runs `git <args>` in `dir`, asserts success, returns stdout without the trailing newline. */
static char *git(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *git(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args = NULL;
    if (vasprintf(&args, fmt, ap) < 0)
        abort();
    va_end(ap);
    char *cmdline = tu_fmt("git -c init.defaultBranch=main -c commit.gpgsign=false "
                           "-c tag.gpgsign=false %s",
                           args);
    struct tu_cmd cmd;
    CU_ASSERT_EQUAL_FATAL(tu_sh(cmdline, git_env, dir, &cmd), 0);
    TU_ASSERT_EXIT(&cmd, 0);
    char *out = strdup(cmd.out);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    tu_cmd_free(&cmd);
    free(cmdline);
    free(args);
    return out;
}

static void git_quiet(const char *dir, const char *args)
{
    free(git(dir, "%s", args));
}

/* A repository with one commit of a.txt (and a message with a body), on branch main. */
static char *make_repo(void)
{
    char *dir = tu_tmpdir();
    git_quiet(dir, "init -q .");
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "alpha\n"), 0);
    free(file);
    git_quiet(dir, "add a.txt");
    git_quiet(dir, "commit -q -m 'first commit' -m 'body line'");
    return dir;
}

static json_object *collect_ok(const char *path)
{
    struct mls_err err = {0};
    json_object *info = NULL;
    int rc = gitinfo_collect(path, &info, &err);
    if (rc)
        fprintf(stderr, "\ngitinfo_collect: %s\n", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
    return info;
}

static const char *str_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int bool_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
        return -1;
    return json_object_get_boolean(v);
}

/* Asserts the field exists and is JSON null. */
static int is_null_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && v == NULL;
}

#define ASSERT_STR_FIELD(o, key, expected)                                                         \
    do {                                                                                           \
        const char *got_ = str_field((o), (key));                                                  \
        if (!got_ || strcmp(got_, (expected)) != 0)                                                \
            fprintf(stderr, "\n%s: expected \"%s\", got \"%s\"\n", (key), (expected),              \
                    got_ ? got_ : "(absent)");                                                     \
        CU_ASSERT_PTR_NOT_NULL(got_);                                                              \
        if (got_)                                                                                  \
            CU_ASSERT_STRING_EQUAL(got_, (expected));                                              \
    } while (0)

static void clean_repository_gives_commit_branch_and_identities(void)
{
    char *dir = make_repo();
    char *head = git(dir, "rev-parse HEAD");
    char *top = realpath(dir, NULL);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "commit", head);
    CU_ASSERT_EQUAL(strlen(head), 40);
    CU_ASSERT_EQUAL(strncmp(str_field(info, "short_commit"), head, 7), 0);
    CU_ASSERT_EQUAL(strlen(str_field(info, "short_commit")), 7);
    ASSERT_STR_FIELD(info, "branch", "main");
    CU_ASSERT_EQUAL(bool_field(info, "detached"), 0);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 0);
    json_object *tags = json_object_object_get(info, "tags");
    CU_ASSERT_TRUE(json_object_is_type(tags, json_type_array));
    CU_ASSERT_EQUAL(json_object_array_length(tags), 0);
    json_object *author = json_object_object_get(info, "author");
    ASSERT_STR_FIELD(author, "name", "Ada Author");
    ASSERT_STR_FIELD(author, "email", "ada@example.com");
    ASSERT_STR_FIELD(author, "time", "2024-01-02T03:04:05+02:00");
    json_object *committer = json_object_object_get(info, "committer");
    ASSERT_STR_FIELD(committer, "name", "Cy Committer");
    ASSERT_STR_FIELD(committer, "email", "cy@example.com");
    ASSERT_STR_FIELD(committer, "time", "2024-01-03T04:05:06-05:30");
    ASSERT_STR_FIELD(info, "message", "first commit");
    CU_ASSERT_TRUE(is_null_field(info, "origin"));
    ASSERT_STR_FIELD(info, "toplevel", top);
    char *uri = tu_fmt("git+file://%s@refs/heads/main", top);
    ASSERT_STR_FIELD(info, "uri", uri);
    free(uri);
    json_object_put(info);
    free(top);
    free(head);
    tu_rm_rf(dir);
    free(dir);
}

static void subfolder_and_file_paths_find_the_enclosing_repository(void)
{
    char *dir = make_repo();
    char *sub = tu_fmt("%s/deep/er", dir);
    char *mk = tu_fmt("mkdir -p '%s'", sub);
    struct tu_cmd cmd;
    tu_sh(mk, NULL, NULL, &cmd);
    tu_cmd_free(&cmd);
    char *head = git(dir, "rev-parse HEAD");
    char *top = realpath(dir, NULL);

    json_object *info = collect_ok(sub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "commit", head);
    ASSERT_STR_FIELD(info, "toplevel", top);
    json_object_put(info);

    char *file = tu_fmt("%s/a.txt", dir);
    info = collect_ok(file);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "commit", head);
    json_object_put(info);

    char *found = gitinfo_toplevel(sub);
    CU_ASSERT_PTR_NOT_NULL(found);
    if (found)
        CU_ASSERT_STRING_EQUAL(found, top);
    free(found);
    free(file);
    free(top);
    free(head);
    free(mk);
    free(sub);
    tu_rm_rf(dir);
    free(dir);
}

static void modified_tracked_file_is_dirty(void)
{
    char *dir = make_repo();
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "alpha changed\n"), 0);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void staged_change_alone_is_dirty(void)
{
    char *dir = make_repo();
    char *file = tu_fmt("%s/b.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "beta\n"), 0);
    git_quiet(dir, "add b.txt");
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void deleted_tracked_file_is_dirty(void)
{
    char *dir = make_repo();
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(unlink(file), 0);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void untracked_file_is_dirty(void)
{
    char *dir = make_repo();
    char *file = tu_fmt("%s/new.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "new\n"), 0);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void mlstage_workspace_folder_is_not_dirt(void)
{
    char *dir = make_repo();
    char *mk =
        tu_fmt("mkdir -p '%s/.mlstage/runs/1' && echo x > '%s/.mlstage/runs/1/run.json'", dir, dir);
    struct tu_cmd cmd;
    tu_sh(mk, NULL, NULL, &cmd);
    TU_ASSERT_EXIT(&cmd, 0);
    tu_cmd_free(&cmd);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 0);
    json_object_put(info);
    /* ...but anything else untracked beside it still is. */
    char *file = tu_fmt("%s/other.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "x\n"), 0);
    info = collect_ok(dir);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(file);
    free(mk);
    tu_rm_rf(dir);
    free(dir);
}

static void untracked_file_in_a_new_folder_is_dirty(void)
{
    char *dir = make_repo();
    char *mk = tu_fmt("mkdir -p '%s/newdir/inner' && echo x > '%s/newdir/inner/f.txt'", dir, dir);
    struct tu_cmd cmd;
    tu_sh(mk, NULL, NULL, &cmd);
    TU_ASSERT_EXIT(&cmd, 0);
    tu_cmd_free(&cmd);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 1);
    json_object_put(info);
    free(mk);
    tu_rm_rf(dir);
    free(dir);
}

static void ignored_files_and_folders_are_not_dirty(void)
{
    char *dir = make_repo();
    char *gi = tu_fmt("%s/.gitignore", dir);
    CU_ASSERT_EQUAL(tu_write(gi, "*.log\n/.mlstage/\n"), 0);
    git_quiet(dir, "add .gitignore");
    git_quiet(dir, "commit -q -m 'ignore logs'");
    /* An ignored file, an ignored folder, and a new folder holding only ignored files. */
    char *mk = tu_fmt("cd '%s' && echo x > run.log && mkdir -p .mlstage/runs/1 && "
                      "echo y > .mlstage/runs/1/model.bin && mkdir logs && echo z > logs/a.log",
                      dir);
    struct tu_cmd cmd;
    tu_sh(mk, NULL, NULL, &cmd);
    TU_ASSERT_EXIT(&cmd, 0);
    tu_cmd_free(&cmd);
    char *porcelain = git(dir, "status --porcelain");
    CU_ASSERT_STRING_EQUAL(porcelain, ""); /* git agrees it is clean */
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 0);
    json_object_put(info);
    free(porcelain);
    free(mk);
    free(gi);
    tu_rm_rf(dir);
    free(dir);
}

static void detached_head_has_no_branch_and_names_the_commit(void)
{
    char *dir = make_repo();
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "second\n"), 0);
    git_quiet(dir, "commit -q -am second");
    char *first = git(dir, "rev-parse HEAD~1");
    git_quiet(dir, "checkout -q --detach HEAD~1");
    char *top = realpath(dir, NULL);
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "commit", first);
    CU_ASSERT_TRUE(is_null_field(info, "branch"));
    CU_ASSERT_EQUAL(bool_field(info, "detached"), 1);
    CU_ASSERT_EQUAL(bool_field(info, "dirty"), 0);
    char *uri = tu_fmt("git+file://%s@%s", top, first);
    ASSERT_STR_FIELD(info, "uri", uri);
    free(uri);
    json_object_put(info);
    free(top);
    free(first);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void check_tags(const char *dir)
{
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    json_object *tags = json_object_object_get(info, "tags");
    CU_ASSERT_TRUE_FATAL(json_object_is_type(tags, json_type_array));
    const char *s = json_object_to_json_string_ext(tags, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    if (strcmp(s, "[\"release/2024\",\"v1.0\",\"v1.0-light\"]") != 0)
        fprintf(stderr, "\ntags: %s\n", s);
    CU_ASSERT_STRING_EQUAL(s, "[\"release/2024\",\"v1.0\",\"v1.0-light\"]");
    json_object_put(info);
}

static void lightweight_and_annotated_tags_at_head_are_listed_and_others_not(void)
{
    char *dir = make_repo();
    git_quiet(dir, "tag old-light");
    git_quiet(dir, "tag -a old-annotated -m 'older release'");
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "second\n"), 0);
    git_quiet(dir, "commit -q -am second");
    git_quiet(dir, "tag v1.0-light");
    git_quiet(dir, "tag -a v1.0 -m 'release 1.0'");
    git_quiet(dir, "tag -a release/2024 -m 'nested name'");
    /* As loose refs, then as packed refs (which carry the peeled commit). */
    check_tags(dir);
    git_quiet(dir, "pack-refs --all");
    check_tags(dir);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

static void credentials_in_an_https_origin_never_reach_the_result(void)
{
    char *dir = make_repo();
    git_quiet(dir, "remote add origin https://user:secret@host.example/org/repo.git");
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "origin", "https://host.example/org/repo.git");
    ASSERT_STR_FIELD(info, "uri", "git+https://host.example/org/repo.git@refs/heads/main");
    const char *all = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PLAIN);
    TU_ASSERT_NOT_CONTAINS(all, "secret");
    TU_ASSERT_NOT_CONTAINS(all, "user:");
    json_object_put(info);
    tu_rm_rf(dir);
    free(dir);
}

static void scp_like_origin_becomes_an_ssh_url(void)
{
    char *dir = make_repo();
    git_quiet(dir, "remote add origin git@github.com:org/repo.git");
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "origin", "ssh://github.com/org/repo.git");
    ASSERT_STR_FIELD(info, "uri", "git+ssh://github.com/org/repo.git@refs/heads/main");
    json_object_put(info);
    tu_rm_rf(dir);
    free(dir);
}

static void origin_is_recorded_as_configured_not_as_rewritten_by_insteadof(void)
{
    char *dir = make_repo();
    git_quiet(dir, "remote add origin https://github.com/org/repo.git");
    git_quiet(dir, "config url.https://oauth2:tok3n@mirror.example/.insteadOf https://github.com/");
    json_object *info = collect_ok(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    ASSERT_STR_FIELD(info, "origin", "https://github.com/org/repo.git");
    const char *all = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PLAIN);
    TU_ASSERT_NOT_CONTAINS(all, "mirror.example");
    TU_ASSERT_NOT_CONTAINS(all, "tok3n");
    json_object_put(info);
    tu_rm_rf(dir);
    free(dir);
}

static void local_path_origin_becomes_a_file_url(void)
{
    char *dir = make_repo();
    char *clone = tu_tmpdir();
    char *cmdline = tu_fmt("git clone -q '%s' '%s/c'", dir, clone);
    struct tu_cmd cmd;
    tu_sh(cmdline, git_env, NULL, &cmd);
    TU_ASSERT_EXIT(&cmd, 0);
    tu_cmd_free(&cmd);
    char *c = tu_fmt("%s/c", clone);
    char *src = realpath(dir, NULL);
    json_object *info = collect_ok(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    char *origin = tu_fmt("file://%s", src);
    ASSERT_STR_FIELD(info, "origin", origin);
    char *uri = tu_fmt("git+file://%s@refs/heads/main", src);
    ASSERT_STR_FIELD(info, "uri", uri);
    json_object_put(info);
    free(uri);
    free(origin);
    free(src);
    free(c);
    free(cmdline);
    tu_rm_rf(clone);
    free(clone);
    tu_rm_rf(dir);
    free(dir);
}

static void strip_credentials_handles_each_url_form(void)
{
    static const char *const cases[][2] = {
        {"https://user:secret@host/org/repo.git", "https://host/org/repo.git"},
        {"https://x-access-token:ghs_abc@github.com/org/repo", "https://github.com/org/repo"},
        {"https://token@dev.azure.com/org/proj/_git/repo",
         "https://dev.azure.com/org/proj/_git/repo"},
        {"https://u:p%40ss@host:8443/a@b/c.git", "https://host:8443/a@b/c.git"},
        {"https://host/org/repo.git", "https://host/org/repo.git"},
        {"https://host/org/repo?x=1#frag", "https://host/org/repo?x=1#frag"},
        {"ssh://git@host:2222/org/repo.git", "ssh://host:2222/org/repo.git"},
        {"git@github.com:org/repo.git", "ssh://github.com/org/repo.git"},
        {"github.com:org/repo.git", "ssh://github.com/org/repo.git"},
        {"git@host:/srv/git/repo.git", "ssh://host/srv/git/repo.git"},
        {"/srv/git/repo.git", "/srv/git/repo.git"},
        {"../sibling/repo", "../sibling/repo"},
        {"file:///srv/git/repo.git", "file:///srv/git/repo.git"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = gitinfo_strip_credentials(cases[i][0]);
        if (!got || strcmp(got, cases[i][1]) != 0)
            fprintf(stderr, "\n%s: expected %s, got %s\n", cases[i][0], cases[i][1],
                    got ? got : "(null)");
        CU_ASSERT_PTR_NOT_NULL(got);
        if (got)
            CU_ASSERT_STRING_EQUAL(got, cases[i][1]);
        free(got);
    }
    CU_ASSERT_PTR_NULL(gitinfo_strip_credentials(NULL));
}

static void folder_outside_any_repository_gives_null(void)
{
    char *dir = tu_tmpdir();
    struct mls_err err = {0};
    json_object *info = (json_object *)1;
    CU_ASSERT_EQUAL(gitinfo_collect(dir, &info, &err), 0);
    CU_ASSERT_PTR_NULL(info);
    CU_ASSERT_PTR_NULL(gitinfo_toplevel(dir));
    info = (json_object *)1;
    CU_ASSERT_EQUAL(gitinfo_collect("/nonexistent/mlstage/path", &info, &err), 0);
    CU_ASSERT_PTR_NULL(info);
    tu_rm_rf(dir);
    free(dir);
}

static void repository_without_commits_gives_null(void)
{
    char *dir = tu_tmpdir();
    git_quiet(dir, "init -q .");
    char *file = tu_fmt("%s/a.txt", dir);
    CU_ASSERT_EQUAL(tu_write(file, "alpha\n"), 0);
    git_quiet(dir, "add a.txt");
    struct mls_err err = {0};
    json_object *info = (json_object *)1;
    CU_ASSERT_EQUAL(gitinfo_collect(dir, &info, &err), 0);
    CU_ASSERT_PTR_NULL(info);
    free(file);
    tu_rm_rf(dir);
    free(dir);
}

/* mbedTLS's CA loader, as gitinfo.c defines it in front of libmbedx509's own. */
struct mbedtls_x509_crt;
int mbedtls_x509_crt_parse_file(struct mbedtls_x509_crt *chain, const char *path);

static void ca_bundle_loading_is_skipped_only_when_asked(void)
{
    /* Clear: the call reaches mbedTLS (or, without it, fails), and a missing file is an error. */
    gitinfo_skip_ca_bundle(0);
    CU_ASSERT_TRUE(mbedtls_x509_crt_parse_file(NULL, "/nonexistent/ca-certificates.crt") < 0);
    /* Set, as in the collector: nothing is read, so a missing file does not matter. */
    gitinfo_skip_ca_bundle(1);
    CU_ASSERT_EQUAL(mbedtls_x509_crt_parse_file(NULL, "/nonexistent/ca-certificates.crt"), 0);
    gitinfo_skip_ca_bundle(0);
    CU_ASSERT_TRUE(mbedtls_x509_crt_parse_file(NULL, "/nonexistent/ca-certificates.crt") < 0);
}

int main(int argc, char **argv)
{
    /*
     * The developer's own git configuration (global excludes, signing)
     * must not change what these repositories look like, to git or to
     * libgit2; and discovery must stop above the temp folders.
     */
    char *home = tu_tmpdir();
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", home, 1);
    const char *tmp = getenv("TMPDIR");
    setenv("GIT_CEILING_DIRECTORIES", tmp && *tmp ? tmp : "/tmp", 1);

    static const struct tu_test tests[] = {
        {"a clean repository gives commit, branch main, identities and times, not dirty",
         clean_repository_gives_commit_branch_and_identities},
        {"a subfolder or a file path finds the enclosing repository",
         subfolder_and_file_paths_find_the_enclosing_repository},
        {"a modified tracked file makes it dirty", modified_tracked_file_is_dirty},
        {"a staged change alone makes it dirty", staged_change_alone_is_dirty},
        {"a deleted tracked file makes it dirty", deleted_tracked_file_is_dirty},
        {"an untracked file makes it dirty", untracked_file_is_dirty},
        {"mlstage's own .mlstage folder does not make it dirty",
         mlstage_workspace_folder_is_not_dirt},
        {"an untracked file in a new folder makes it dirty",
         untracked_file_in_a_new_folder_is_dirty},
        {"ignored files and folders do not make it dirty", ignored_files_and_folders_are_not_dirty},
        {"a detached HEAD has no branch and the uri names the commit",
         detached_head_has_no_branch_and_names_the_commit},
        {"lightweight and annotated tags at HEAD are listed, older ones not",
         lightweight_and_annotated_tags_at_head_are_listed_and_others_not},
        {"credentials in an https origin never reach the result",
         credentials_in_an_https_origin_never_reach_the_result},
        {"an scp-like origin becomes an ssh:// URL", scp_like_origin_becomes_an_ssh_url},
        {"the origin is recorded as configured, not as rewritten by insteadOf",
         origin_is_recorded_as_configured_not_as_rewritten_by_insteadof},
        {"a local path origin becomes a file:// URL", local_path_origin_becomes_a_file_url},
        {"strip_credentials handles each URL form", strip_credentials_handles_each_url_form},
        {"a folder outside any repository gives NULL", folder_outside_any_repository_gives_null},
        {"a repository without commits gives NULL", repository_without_commits_gives_null},
        {"the CA bundle is skipped only when asked", ca_bundle_loading_is_skipped_only_when_asked},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "gitinfo", tests);
    tu_rm_rf(home);
    free(home);
    return rc;
}
