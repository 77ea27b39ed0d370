/* test_ci.c — the CI adapters: detection, run facts, and each runner's exact syntax and escaping.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ci.h"
#include "testutil.h"

/* ---- a fake environment ------------------------------------------------- */

static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    size_t n = strlen(name);
    for (const char *const *e = fake_env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static enum ci_kind detect(const char *const *env)
{
    fake_env = env;
    return ci_detect(fake_getenv);
}

/* ---- capturing what a call prints --------------------------------------- */

struct capture {
    FILE *f;
    char *text;
    size_t len;
};

static FILE *cap_open(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    c->f = open_memstream(&c->text, &c->len);
    return c->f;
}

static const char *cap_close(struct capture *c)
{
    fclose(c->f);
    c->f = NULL;
    return c->text;
}

#define ASSERT_STR(got, expected)                                                                  \
    do {                                                                                           \
        const char *g_ = (got);                                                                    \
        if (!g_ || strcmp(g_, (expected)) != 0)                                                    \
            fprintf(stderr, "\nexpected: [%s]\n     got: [%s]\n", (expected), g_ ? g_ : "(null)"); \
        CU_ASSERT_PTR_NOT_NULL_FATAL(g_);                                                          \
        CU_ASSERT_STRING_EQUAL(g_, (expected));                                                    \
    } while (0)

#define ASSERT_ESCAPE(fn, in, expected)                                                            \
    do {                                                                                           \
        char *e_ = fn(in);                                                                         \
        ASSERT_STR(e_, expected);                                                                  \
        free(e_);                                                                                  \
    } while (0)

/* ---- detection and names ------------------------------------------------ */

static void test_detect(void)
{
    const char *azdo[] = {"TF_BUILD=True", NULL};
    const char *azdo_lower[] = {"TF_BUILD=true", NULL};
    const char *azdo_upper[] = {"TF_BUILD=TRUE", NULL};
    const char *azdo_false[] = {"TF_BUILD=False", NULL};
    const char *azdo_empty[] = {"TF_BUILD=", NULL};
    const char *gh[] = {"GITHUB_ACTIONS=true", NULL};
    const char *gh_false[] = {"GITHUB_ACTIONS=false", NULL};
    const char *both[] = {"GITHUB_ACTIONS=true", "TF_BUILD=True", NULL};
    const char *none[] = {"CI=true", NULL};
    CU_ASSERT_EQUAL(detect(azdo), CI_AZURE_DEVOPS);
    CU_ASSERT_EQUAL(detect(azdo_lower), CI_AZURE_DEVOPS);
    CU_ASSERT_EQUAL(detect(azdo_upper), CI_AZURE_DEVOPS);
    CU_ASSERT_EQUAL(detect(azdo_false), CI_NONE);
    CU_ASSERT_EQUAL(detect(azdo_empty), CI_NONE);
    CU_ASSERT_EQUAL(detect(gh), CI_GITHUB);
    CU_ASSERT_EQUAL(detect(gh_false), CI_NONE);
    CU_ASSERT_EQUAL(detect(both), CI_AZURE_DEVOPS);
    CU_ASSERT_EQUAL(detect(none), CI_NONE);
    CU_ASSERT_EQUAL(detect(NULL), CI_NONE);
}

static void test_names_round_trip(void)
{
    CU_ASSERT_STRING_EQUAL(ci_name(CI_AZURE_DEVOPS), "azure-devops");
    CU_ASSERT_STRING_EQUAL(ci_name(CI_GITHUB), "github");
    CU_ASSERT_STRING_EQUAL(ci_name(CI_NONE), "none");
    CU_ASSERT_EQUAL(ci_parse("azure-devops"), CI_AZURE_DEVOPS);
    CU_ASSERT_EQUAL(ci_parse("github"), CI_GITHUB);
    CU_ASSERT_EQUAL(ci_parse("none"), CI_NONE);
    CU_ASSERT_EQUAL(ci_parse("jenkins"), -1);
    CU_ASSERT_EQUAL(ci_parse("GitHub"), -1);
}

/* ---- escaping ----------------------------------------------------------- */

static void test_vso_property_escaping(void)
{
    ASSERT_ESCAPE(ci_vso_escape_property, "a%b\rc\nd;e]f", "a%AZP25b%0Dc%0Ad%3Be%5Df");
    /* % first: an input that looks escaped stays what it was. */
    ASSERT_ESCAPE(ci_vso_escape_property, "%0A%3B", "%AZP250A%AZP253B");
    ASSERT_ESCAPE(ci_vso_escape_property, "k=v:w,x[y", "k=v:w,x[y");
    ASSERT_ESCAPE(ci_vso_escape_property, "", "");
    ASSERT_ESCAPE(ci_vso_escape_property, NULL, "");
}

static void test_vso_message_escaping(void)
{
    ASSERT_ESCAPE(ci_vso_escape_message, "50% done\r\n;]", "50%AZP25 done%0D%0A;]");
    ASSERT_ESCAPE(ci_vso_escape_message, "%AZP25", "%AZP25AZP25");
    ASSERT_ESCAPE(ci_vso_escape_message, "", "");
}

static void test_gh_data_escaping(void)
{
    ASSERT_ESCAPE(ci_gh_escape_data, "100%\r\n:,", "100%25%0D%0A:,");
    ASSERT_ESCAPE(ci_gh_escape_data, "%0A", "%250A");
    ASSERT_ESCAPE(ci_gh_escape_data, "", "");
}

static void test_gh_property_escaping(void)
{
    ASSERT_ESCAPE(ci_gh_escape_property, "C:\\a,b%\n", "C%3A\\a%2Cb%25%0A");
    ASSERT_ESCAPE(ci_gh_escape_property, "%3A", "%253A");
    ASSERT_ESCAPE(ci_gh_escape_property, "", "");
}

/* ---- outputs ------------------------------------------------------------ */

static void test_output_azure(void)
{
    struct capture c;
    struct mls_err err;
    err_clear(&err);
    CU_ASSERT_EQUAL(
        ci_output(CI_AZURE_DEVOPS, cap_open(&c), fake_getenv, "model_version", "3", &err), 0);
    ASSERT_STR(cap_close(&c), "##vso[task.setvariable variable=model_version;isOutput=true]3\n");
    free(c.text);
    /* The value is the message: only %, CR and LF need escaping; ; and ] are fine after the ]. */
    CU_ASSERT_EQUAL(
        ci_output(CI_AZURE_DEVOPS, cap_open(&c), fake_getenv, "report", "a;b]c\n50%", &err), 0);
    ASSERT_STR(cap_close(&c),
               "##vso[task.setvariable variable=report;isOutput=true]a;b]c%0A50%AZP25\n");
    free(c.text);
}

static void test_output_none_prints_nothing(void)
{
    struct capture c;
    struct mls_err err;
    CU_ASSERT_EQUAL(ci_output(CI_NONE, cap_open(&c), fake_getenv, "k", "v", &err), 0);
    ASSERT_STR(cap_close(&c), "");
    free(c.text);
}

static void test_output_github_single_line(void)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/output", dir),
         *var = tu_fmt("GITHUB_OUTPUT=%s", path);
    const char *env[] = {var, NULL};
    struct capture c;
    struct mls_err err;
    fake_env = env;
    tu_write(path, "earlier=1\n");
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, cap_open(&c), fake_getenv, "promote", "true", &err), 0);
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, c.f, fake_getenv, "expr", "a=b<<c", &err), 0);
    ASSERT_STR(cap_close(&c), ""); /* nothing on stdout: the file is the channel */
    char *text = tu_read(path, NULL);
    ASSERT_STR(text, "earlier=1\npromote=true\nexpr=a=b<<c\n");
    free(text);
    free(c.text);
    tu_rm_rf(dir);
    free(dir);
    free(path);
    free(var);
}

/* Parses "KEY<<DELIM\nVALUE\nDELIM\n" and checks the runner would read back `value`. */
static void assert_heredoc(const char *text, const char *key, const char *value)
{
    size_t klen = strlen(key);
    CU_ASSERT_EQUAL_FATAL(strncmp(text, key, klen), 0);
    CU_ASSERT_EQUAL_FATAL(strncmp(text + klen, "<<", 2), 0);
    const char *delim = text + klen + 2;
    const char *nl = strchr(delim, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    char *d = strndup(delim, (size_t)(nl - delim));
    CU_ASSERT_TRUE(strlen(d) >= 8);
    /* The delimiter must not occur in the value, or the runner would stop early. */
    CU_ASSERT_PTR_NULL(strstr(value, d));
    char *expected = tu_fmt("%s<<%s\n%s\n%s\n", key, d, value, d);
    ASSERT_STR(text, expected);
    free(expected);
    free(d);
}

static void test_output_github_multiline(void)
{
    char *dir = tu_tmpdir(), *path = tu_fmt("%s/output", dir),
         *var = tu_fmt("GITHUB_OUTPUT=%s", path);
    const char *env[] = {var, NULL};
    struct mls_err err;
    fake_env = env;
    const char *value = "line one\nghadelimiter_\nEOF\nline 4";
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, stdout, fake_getenv, "notes", value, &err), 0);
    char *text = tu_read(path, NULL);
    assert_heredoc(text, "notes", value);
    free(text);

    /* A bare CR also needs the heredoc form: a KEY=VALUE line cannot carry it. */
    unlink(path);
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, stdout, fake_getenv, "cr", "a\rb", &err), 0);
    text = tu_read(path, NULL);
    assert_heredoc(text, "cr", "a\rb");
    free(text);

    /* Two heredocs get different delimiters: nothing guessable. */
    unlink(path);
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, stdout, fake_getenv, "a", "1\n2", &err), 0);
    CU_ASSERT_EQUAL(ci_output(CI_GITHUB, stdout, fake_getenv, "b", "1\n2", &err), 0);
    text = tu_read(path, NULL);
    char d1[64] = "", d2[64] = "";
    CU_ASSERT_EQUAL(sscanf(text, "a<<%63s", d1), 1);
    const char *second = strstr(text, "\nb<<");
    CU_ASSERT_PTR_NOT_NULL_FATAL(second);
    CU_ASSERT_EQUAL(sscanf(second + 1, "b<<%63s", d2), 1);
    CU_ASSERT_STRING_NOT_EQUAL(d1, d2);
    free(text);
    tu_rm_rf(dir);
    free(dir);
    free(path);
    free(var);
}

static void test_output_github_without_file(void)
{
    const char *env[] = {"GITHUB_ACTIONS=true", NULL};
    struct mls_err err;
    fake_env = env;
    err_clear(&err);
    int rc = ci_output(CI_GITHUB, stdout, fake_getenv, "promote", "true", &err);
    CU_ASSERT_TRUE(rc < 0);
    CU_ASSERT_EQUAL(err.code, rc);
    TU_ASSERT_CONTAINS(err.msg, "GITHUB_OUTPUT");
    TU_ASSERT_CONTAINS(err.msg, "promote");
}

/* ---- annotations, debug, groups ---------------------------------------- */

static void test_issue_azure(void)
{
    struct capture c;
    ci_issue(CI_AZURE_DEVOPS, cap_open(&c), "error", "tasks/train.yml", 3, 5,
             "expected number\n50% of ;]");
    ASSERT_STR(cap_close(&c), "##vso[task.logissue type=error;sourcepath=tasks/train.yml;"
                              "linenumber=3;columnnumber=5;]expected number%0A50%AZP25 of ;]\n");
    free(c.text);
    ci_issue(CI_AZURE_DEVOPS, cap_open(&c), "warning", "odd;dir]/a%.yml", 0, 0, "m");
    ASSERT_STR(cap_close(&c),
               "##vso[task.logissue type=warning;sourcepath=odd%3Bdir%5D/a%AZP25.yml;]m\n");
    free(c.text);
    ci_issue(CI_AZURE_DEVOPS, cap_open(&c), "warning", NULL, 0, 0, "no place");
    ASSERT_STR(cap_close(&c), "##vso[task.logissue type=warning;]no place\n");
    free(c.text);
}

static void test_issue_github(void)
{
    struct capture c;
    ci_issue(CI_GITHUB, cap_open(&c), "error", "tasks/train.yml", 3, 5, "100% bad\nreally");
    ASSERT_STR(cap_close(&c), "::error file=tasks/train.yml,line=3,col=5::100%25 bad%0Areally\n");
    free(c.text);
    ci_issue(CI_GITHUB, cap_open(&c), "warning", "C:/a,b.yml", 7, 0, "m: x, y");
    ASSERT_STR(cap_close(&c), "::warning file=C%3A/a%2Cb.yml,line=7::m: x, y\n");
    free(c.text);
    ci_issue(CI_GITHUB, cap_open(&c), "error", NULL, 0, 0, "no place");
    ASSERT_STR(cap_close(&c), "::error::no place\n");
    free(c.text);
}

static void test_issue_plain(void)
{
    struct capture c;
    ci_issue(CI_NONE, cap_open(&c), "error", "tasks/train.yml", 3, 5, "bad");
    ASSERT_STR(cap_close(&c), "tasks/train.yml:3:5: error: bad\n");
    free(c.text);
    ci_issue(CI_NONE, cap_open(&c), "warning", "tasks/train.yml", 0, 0, "bad");
    ASSERT_STR(cap_close(&c), "tasks/train.yml: warning: bad\n");
    free(c.text);
    ci_issue(CI_NONE, cap_open(&c), "error", NULL, 0, 0, "50% bad");
    ASSERT_STR(cap_close(&c), "error: 50% bad\n");
    free(c.text);
}

static void test_debug(void)
{
    struct capture c;
    ci_debug(CI_GITHUB, cap_open(&c), "50% done\nnext");
    ASSERT_STR(cap_close(&c), "::debug::50%25 done%0Anext\n");
    free(c.text);
    /* ##[debug] is a formatting prefix the agent does not unescape: % must stay %,
     * and each line of a multi-line message needs its own prefix. */
    ci_debug(CI_AZURE_DEVOPS, cap_open(&c), "50% done\nnext");
    ASSERT_STR(cap_close(&c), "##[debug]50% done\n##[debug]next\n");
    free(c.text);
    ci_debug(CI_NONE, cap_open(&c), "50% done");
    ASSERT_STR(cap_close(&c), "50% done\n");
    free(c.text);
}

static void test_groups(void)
{
    struct capture c;
    FILE *f = cap_open(&c);
    ci_group_begin(CI_AZURE_DEVOPS, f, "Train\nmodel");
    ci_group_end(CI_AZURE_DEVOPS, f);
    ASSERT_STR(cap_close(&c), "##[group]Train model\n##[endgroup]\n");
    free(c.text);
    f = cap_open(&c);
    ci_group_begin(CI_GITHUB, f, "Train\r\nmodel");
    ci_group_end(CI_GITHUB, f);
    ASSERT_STR(cap_close(&c), "::group::Train  model\n::endgroup::\n");
    free(c.text);
    /* The runner unescapes ::group:: data, so a literal %25 in a title must survive. */
    f = cap_open(&c);
    ci_group_begin(CI_GITHUB, f, "coverage %25");
    ASSERT_STR(cap_close(&c), "::group::coverage %2525\n");
    free(c.text);
    f = cap_open(&c);
    ci_group_begin(CI_NONE, f, "Train");
    ci_group_end(CI_NONE, f);
    ASSERT_STR(cap_close(&c), "== Train ==\n");
    free(c.text);
}

/* ---- run facts ---------------------------------------------------------- */

static const char *info_str(json_object *info, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(info, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static void test_info_azure(void)
{
    const char *env[] = {"SYSTEM_COLLECTIONURI=https://dev.azure.com/contoso/",
                         "SYSTEM_TEAMPROJECT=ml",
                         "BUILD_BUILDID=42",
                         "BUILD_REPOSITORY_URI=https://dev.azure.com/contoso/ml/_git/diabetes",
                         "BUILD_SOURCEBRANCH=refs/heads/main",
                         "BUILD_SOURCEVERSION=0123abcd",
                         "BUILD_REQUESTEDFOR=Ada Lovelace",
                         NULL};
    fake_env = env;
    json_object *info = ci_info(CI_AZURE_DEVOPS, fake_getenv);
    ASSERT_STR(info_str(info, "system"), "azure-devops");
    ASSERT_STR(info_str(info, "run_url"),
               "https://dev.azure.com/contoso/ml/_build/results?buildId=42");
    ASSERT_STR(info_str(info, "run_id"), "42");
    ASSERT_STR(info_str(info, "repository"), "https://dev.azure.com/contoso/ml/_git/diabetes");
    ASSERT_STR(info_str(info, "ref"), "refs/heads/main");
    ASSERT_STR(info_str(info, "sha"), "0123abcd");
    ASSERT_STR(info_str(info, "actor"), "Ada Lovelace");
    json_object_put(info);
}

static void test_info_azure_url_forms(void)
{
    /* On-premises collections have no trailing slash; projects may have spaces. */
    const char *env[] = {"SYSTEM_COLLECTIONURI=https://tfs.contoso.com/tfs/DefaultCollection",
                         "SYSTEM_TEAMPROJECT=Fabrikam Fiber", "BUILD_BUILDID=7", NULL};
    fake_env = env;
    json_object *info = ci_info(CI_AZURE_DEVOPS, fake_getenv);
    ASSERT_STR(info_str(info, "run_url"), "https://tfs.contoso.com/tfs/DefaultCollection/"
                                          "Fabrikam%20Fiber/_build/results?buildId=7");
    json_object_put(info);

    const char *partial[] = {"SYSTEM_COLLECTIONURI=https://dev.azure.com/contoso/",
                             "SYSTEM_TEAMPROJECT=ml", NULL};
    fake_env = partial;
    info = ci_info(CI_AZURE_DEVOPS, fake_getenv);
    CU_ASSERT_PTR_NULL(info_str(info, "run_url"));
    CU_ASSERT_TRUE(json_object_object_get_ex(info, "run_url", NULL));
    json_object_put(info);
}

static void test_info_github(void)
{
    const char *env[] = {"GITHUB_SERVER_URL=https://github.com",
                         "GITHUB_REPOSITORY=contoso/diabetes",
                         "GITHUB_RUN_ID=123456",
                         "GITHUB_RUN_ATTEMPT=2",
                         "GITHUB_REF=refs/heads/main",
                         "GITHUB_SHA=89abcdef",
                         "GITHUB_ACTOR=octocat",
                         NULL};
    fake_env = env;
    json_object *info = ci_info(CI_GITHUB, fake_getenv);
    ASSERT_STR(info_str(info, "system"), "github");
    ASSERT_STR(info_str(info, "run_url"),
               "https://github.com/contoso/diabetes/actions/runs/123456/attempts/2");
    ASSERT_STR(info_str(info, "run_id"), "123456");
    ASSERT_STR(info_str(info, "repository"), "contoso/diabetes");
    ASSERT_STR(info_str(info, "ref"), "refs/heads/main");
    ASSERT_STR(info_str(info, "sha"), "89abcdef");
    ASSERT_STR(info_str(info, "actor"), "octocat");
    json_object_put(info);

    const char *ghes[] = {"GITHUB_SERVER_URL=https://ghe.contoso.com",
                          "GITHUB_REPOSITORY=ml/diabetes", "GITHUB_RUN_ID=9", NULL};
    fake_env = ghes;
    info = ci_info(CI_GITHUB, fake_getenv);
    ASSERT_STR(info_str(info, "run_url"), "https://ghe.contoso.com/ml/diabetes/actions/runs/9");
    json_object_put(info);

    const char *no_server[] = {"GITHUB_REPOSITORY=ml/diabetes", "GITHUB_RUN_ID=9", NULL};
    fake_env = no_server;
    info = ci_info(CI_GITHUB, fake_getenv);
    ASSERT_STR(info_str(info, "run_url"), "https://github.com/ml/diabetes/actions/runs/9");
    json_object_put(info);
}

static void test_info_none(void)
{
    const char *env[] = {"GITHUB_RUN_ID=9", "BUILD_BUILDID=4", NULL};
    fake_env = env;
    json_object *info = ci_info(CI_NONE, fake_getenv);
    ASSERT_STR(info_str(info, "system"), "none");
    static const char *const keys[] = {"run_url", "run_id", "repository", "ref", "sha", "actor"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        CU_ASSERT_TRUE(json_object_object_get_ex(info, keys[i], NULL));
        CU_ASSERT_PTR_NULL(info_str(info, keys[i]));
    }
    json_object_put(info);
}

/* ---- summaries ---------------------------------------------------------- */

static void test_summary_azure(void)
{
    char *dir = tu_tmpdir(), *md = tu_fmt("%s/summary.md", dir);
    char real[PATH_MAX];
    struct capture c;
    struct mls_err err;
    tu_write(md, "# Train\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(md, real));
    CU_ASSERT_EQUAL(ci_summary(CI_AZURE_DEVOPS, cap_open(&c), fake_getenv, real, &err), 0);
    char *expected = tu_fmt("##vso[task.uploadsummary]%s\n", real);
    ASSERT_STR(cap_close(&c), expected);
    free(expected);
    free(c.text);

    /* The agent resolves paths against its own directory: a relative one is made absolute. */
    char cwd[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
    CU_ASSERT_EQUAL(ci_summary(CI_AZURE_DEVOPS, cap_open(&c), fake_getenv, "summary.md", &err), 0);
    CU_ASSERT_EQUAL_FATAL(chdir(cwd), 0);
    expected = tu_fmt("##vso[task.uploadsummary]%s\n", real);
    ASSERT_STR(cap_close(&c), expected);
    free(expected);
    free(c.text);
    tu_rm_rf(dir);
    free(dir);
    free(md);
}

static void test_summary_github(void)
{
    char *dir = tu_tmpdir(), *md = tu_fmt("%s/summary.md", dir);
    char *dest = tu_fmt("%s/step_summary", dir), *var = tu_fmt("GITHUB_STEP_SUMMARY=%s", dest);
    const char *env[] = {var, NULL};
    struct capture c;
    struct mls_err err;
    fake_env = env;
    tu_write(dest, "# Earlier step\n");
    tu_write(md, "## Evaluate\n| metric | value |\n|---|---|\n| r2 | 0.45 |");
    CU_ASSERT_EQUAL(ci_summary(CI_GITHUB, cap_open(&c), fake_getenv, md, &err), 0);
    ASSERT_STR(cap_close(&c), "");
    free(c.text);
    char *text = tu_read(dest, NULL);
    ASSERT_STR(text, "# Earlier step\n## Evaluate\n| metric | value |\n|---|---|\n| r2 | 0.45 |\n");
    free(text);

    /* Over the runner's 1 MiB per step: a note, not a truncated table. */
    FILE *big = fopen(md, "w");
    for (int i = 0; i < (1 << 20) / 16 + 1; i++)
        fputs("| row | 123456 |\n", big);
    fclose(big);
    tu_write(dest, "");
    CU_ASSERT_EQUAL(ci_summary(CI_GITHUB, stdout, fake_getenv, md, &err), 0);
    size_t len = 0;
    text = tu_read(dest, &len);
    CU_ASSERT_TRUE(len < 4096);
    TU_ASSERT_CONTAINS(text, "1 MiB");
    TU_ASSERT_NOT_CONTAINS(text, "| row |");
    free(text);

    char *missing = tu_fmt("%s/missing.md", dir);
    err_clear(&err);
    CU_ASSERT_EQUAL(ci_summary(CI_GITHUB, stdout, fake_getenv, missing, &err), MLSTAGE_EIO);
    TU_ASSERT_CONTAINS(err.msg, missing);
    free(missing);

    const char *no_dest[] = {"GITHUB_ACTIONS=true", NULL};
    fake_env = no_dest;
    CU_ASSERT_EQUAL(ci_summary(CI_GITHUB, stdout, fake_getenv, md, &err), 0);
    CU_ASSERT_EQUAL(ci_summary(CI_NONE, cap_open(&c), fake_getenv, md, &err), 0);
    ASSERT_STR(cap_close(&c), "");
    free(c.text);
    tu_rm_rf(dir);
    free(dir);
    free(md);
    free(dest);
    free(var);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"TF_BUILD=True (any case) is Azure DevOps, GITHUB_ACTIONS=true is GitHub", test_detect},
        {"CI names parse and print both ways", test_names_round_trip},
        {"##vso property values escape %, CR, LF, ; and ]", test_vso_property_escaping},
        {"##vso messages escape only %, CR and LF", test_vso_message_escaping},
        {"GitHub command data escapes %, CR and LF", test_gh_data_escaping},
        {"GitHub command properties also escape : and ,", test_gh_property_escaping},
        {"Azure DevOps outputs are setvariable commands with isOutput=true", test_output_azure},
        {"plain outputs print nothing here", test_output_none_prints_nothing},
        {"GitHub single-line outputs are appended to $GITHUB_OUTPUT as KEY=VALUE",
         test_output_github_single_line},
        {"GitHub multi-line outputs use a heredoc with a delimiter absent from the value",
         test_output_github_multiline},
        {"GitHub outputs without $GITHUB_OUTPUT are an error naming the output",
         test_output_github_without_file},
        {"Azure DevOps annotations are logissue commands with escaped properties",
         test_issue_azure},
        {"GitHub annotations are ::error/::warning with escaped properties", test_issue_github},
        {"plain annotations read file:line:col: level: message", test_issue_plain},
        {"debug lines use each runner's syntax and escaping", test_debug},
        {"group markers are single lines in each runner's syntax", test_groups},
        {"Azure DevOps facts and run URL come from the agent's variables", test_info_azure},
        {"Azure DevOps run URLs work without a trailing slash and with spaces",
         test_info_azure_url_forms},
        {"GitHub facts and run URL include the attempt and the server", test_info_github},
        {"outside CI every fact is null", test_info_none},
        {"Azure DevOps summaries are uploaded by absolute path", test_summary_azure},
        {"GitHub summaries are appended to $GITHUB_STEP_SUMMARY within 1 MiB", test_summary_github},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "ci", tests);
}
