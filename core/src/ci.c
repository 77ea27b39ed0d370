/* ci.c — the CI system adapters: detection and each runner's exact command syntax and escaping. */
#include "ci.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#define GH_SUMMARY_LIMIT (1u << 20)

enum ci_kind ci_detect(const char *(*getenv_fn)(const char *name))
{
    const char *tf = getenv_fn("TF_BUILD");
    if (tf && strcasecmp(tf, "true") == 0)
        return CI_AZURE_DEVOPS;
    const char *gh = getenv_fn("GITHUB_ACTIONS");
    if (gh && strcmp(gh, "true") == 0)
        return CI_GITHUB;
    return CI_NONE;
}

const char *ci_name(enum ci_kind kind)
{
    switch (kind) {
    case CI_AZURE_DEVOPS: return "azure-devops";
    case CI_GITHUB: return "github";
    default: return "none";
    }
}

int ci_parse(const char *name)
{
    if (strcmp(name, "azure-devops") == 0)
        return CI_AZURE_DEVOPS;
    if (strcmp(name, "github") == 0)
        return CI_GITHUB;
    if (strcmp(name, "none") == 0 || strcmp(name, "plain") == 0)
        return CI_NONE;
    return -1;
}

/* A URL path segment: project names may hold spaces and other bytes a URL cannot. */
static void put_path_segment(struct buf *b, const char *segment)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)segment; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

static void put_env(json_object *o, const char *key, const char *(*getenv_fn)(const char *),
                    const char *var)
{
    const char *v = getenv_fn(var);
    json_object_object_add(o, key, v && *v ? json_object_new_string(v) : NULL);
}

json_object *ci_info(enum ci_kind kind, const char *(*getenv_fn)(const char *name))
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "system", json_object_new_string(ci_name(kind)));
    struct buf url;
    buf_init(&url);
    if (kind == CI_AZURE_DEVOPS) {
        const char *coll = getenv_fn("SYSTEM_COLLECTIONURI");
        const char *proj = getenv_fn("SYSTEM_TEAMPROJECT");
        const char *id = getenv_fn("BUILD_BUILDID");
        if (coll && *coll && proj && *proj && id && *id) {
            buf_printf(&url, "%s%s", coll, coll[strlen(coll) - 1] == '/' ? "" : "/");
            put_path_segment(&url, proj);
            buf_printf(&url, "/_build/results?buildId=%s", id);
        }
        put_env(o, "run_id", getenv_fn, "BUILD_BUILDID");
        put_env(o, "repository", getenv_fn, "BUILD_REPOSITORY_URI");
        put_env(o, "ref", getenv_fn, "BUILD_SOURCEBRANCH");
        put_env(o, "sha", getenv_fn, "BUILD_SOURCEVERSION");
        put_env(o, "actor", getenv_fn, "BUILD_REQUESTEDFOR");
    } else if (kind == CI_GITHUB) {
        const char *server = getenv_fn("GITHUB_SERVER_URL");
        const char *repo = getenv_fn("GITHUB_REPOSITORY");
        const char *id = getenv_fn("GITHUB_RUN_ID");
        const char *attempt = getenv_fn("GITHUB_RUN_ATTEMPT");
        if (repo && *repo && id && *id) {
            buf_printf(&url, "%s/%s/actions/runs/%s",
                       server && *server ? server : "https://github.com", repo, id);
            if (attempt && *attempt)
                buf_printf(&url, "/attempts/%s", attempt);
        }
        put_env(o, "run_id", getenv_fn, "GITHUB_RUN_ID");
        put_env(o, "repository", getenv_fn, "GITHUB_REPOSITORY");
        put_env(o, "ref", getenv_fn, "GITHUB_REF");
        put_env(o, "sha", getenv_fn, "GITHUB_SHA");
        put_env(o, "actor", getenv_fn, "GITHUB_ACTOR");
    } else {
        json_object_object_add(o, "run_id", NULL);
        json_object_object_add(o, "repository", NULL);
        json_object_object_add(o, "ref", NULL);
        json_object_object_add(o, "sha", NULL);
        json_object_object_add(o, "actor", NULL);
    }
    json_object_object_add(o, "run_url", url.data ? json_object_new_string(url.data) : NULL);
    buf_free(&url);
    return o;
}

/* Replaces each byte in `from` by the string at the same index of `to`. */
static char *escape(const char *value, const char *from, const char *const *to)
{
    struct buf b;
    buf_init(&b);
    for (const char *p = value ? value : ""; *p; p++) {
        const char *hit = strchr(from, *p);
        if (hit && *p)
            buf_puts(&b, to[hit - from]);
        else
            buf_putc(&b, *p);
    }
    if (!b.data)
        buf_append(&b, "", 0);
    return buf_steal(&b);
}

char *ci_vso_escape_property(const char *value)
{
    static const char *const to[] = {"%AZP25", "%0D", "%0A", "%3B", "%5D"};
    return escape(value, "%\r\n;]", to);
}

char *ci_vso_escape_message(const char *value)
{
    static const char *const to[] = {"%AZP25", "%0D", "%0A"};
    return escape(value, "%\r\n", to);
}

char *ci_gh_escape_data(const char *value)
{
    static const char *const to[] = {"%25", "%0D", "%0A"};
    return escape(value, "%\r\n", to);
}

char *ci_gh_escape_property(const char *value)
{
    static const char *const to[] = {"%25", "%0D", "%0A", "%3A", "%2C"};
    return escape(value, "%\r\n:,", to);
}

/* Appends to a runner file (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY) in one write. */
static int append_file(const char *path, const char *data, size_t len, struct mls_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(err, MLSTAGE_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return err_set(err, MLSTAGE_EIO, "cannot write %s: %s", path, strerror(e));
        }
        done += (size_t)n;
    }
    if (close(fd) != 0)
        return err_set(err, MLSTAGE_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int ci_output(enum ci_kind kind, FILE *out, const char *(*getenv_fn)(const char *name),
              const char *key, const char *value, struct mls_err *err)
{
    if (kind == CI_AZURE_DEVOPS) {
        char *k = ci_vso_escape_property(key);
        char *v = ci_vso_escape_message(value);
        fprintf(out, "##vso[task.setvariable variable=%s;isOutput=true]%s\n", k, v);
        fflush(out);
        free(k);
        free(v);
        return 0;
    }
    if (kind != CI_GITHUB)
        return 0;
    const char *path = getenv_fn("GITHUB_OUTPUT");
    if (!path || !*path)
        return err_set(err, MLSTAGE_EINPUT,
                       "GITHUB_ACTIONS=true but GITHUB_OUTPUT is not set: cannot publish output %s",
                       key);
    struct buf b;
    buf_init(&b);
    if (strchr(value, '\n') || strchr(value, '\r')) {
        /* Heredoc form with a delimiter that cannot occur in the value. */
        char delim[48];
        do {
            unsigned char rnd[16];
            if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                return err_set(err, MLSTAGE_EINTERNAL, "no randomness for a delimiter");
            int n = snprintf(delim, sizeof(delim), "ghadelimiter_");
            for (size_t i = 0; i < sizeof(rnd); i++)
                n += snprintf(delim + n, sizeof(delim) - (size_t)n, "%02x", rnd[i]);
        } while (strstr(value, delim));
        buf_printf(&b, "%s<<%s\n%s\n%s\n", key, delim, value, delim);
    } else {
        buf_printf(&b, "%s=%s\n", key, value);
    }
    int rc = append_file(path, b.data, b.len, err);
    buf_free(&b);
    return rc;
}

void ci_issue(enum ci_kind kind, FILE *out, const char *level, const char *file, int line, int col,
              const char *msg)
{
    if (kind == CI_AZURE_DEVOPS) {
        char *m = ci_vso_escape_message(msg);
        fprintf(out, "##vso[task.logissue type=%s;", level);
        if (file) {
            char *f = ci_vso_escape_property(file);
            fprintf(out, "sourcepath=%s;", f);
            free(f);
            if (line > 0)
                fprintf(out, "linenumber=%d;", line);
            if (col > 0)
                fprintf(out, "columnnumber=%d;", col);
        }
        fprintf(out, "]%s\n", m);
        free(m);
    } else if (kind == CI_GITHUB) {
        char *m = ci_gh_escape_data(msg);
        fprintf(out, "::%s", level);
        if (file) {
            char *f = ci_gh_escape_property(file);
            fprintf(out, " file=%s", f);
            free(f);
            if (line > 0)
                fprintf(out, ",line=%d", line);
            if (col > 0)
                fprintf(out, ",col=%d", col);
        }
        fprintf(out, "::%s\n", m);
        free(m);
    } else {
        if (file && line > 0)
            fprintf(out, "%s:%d:%d: %s: %s\n", file, line, col, level, msg);
        else if (file)
            fprintf(out, "%s: %s: %s\n", file, level, msg);
        else
            fprintf(out, "%s: %s\n", level, msg);
    }
}

void ci_debug(enum ci_kind kind, FILE *out, const char *msg)
{
    if (kind == CI_AZURE_DEVOPS) {
        /* ##[debug] is a formatting prefix, not a ##vso command: the agent unescapes
         * nothing in it, so % stays as is and each line gets its own prefix. */
        const char *p = msg;
        do {
            size_t n = strcspn(p, "\r\n");
            fprintf(out, "##[debug]%.*s\n", (int)n, p);
            p += n;
            if (p[0] == '\r' && p[1] == '\n')
                p++;
            if (*p)
                p++;
        } while (*p);
    } else if (kind == CI_GITHUB) {
        char *m = ci_gh_escape_data(msg);
        fprintf(out, "::debug::%s\n", m);
        free(m);
    } else {
        fprintf(out, "%s\n", msg);
    }
}

/* Group titles are single lines; a newline would end the marker early. */
static char *one_line(const char *title)
{
    char *t = xstrdup(title);
    for (char *p = t; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return t;
}

void ci_group_begin(enum ci_kind kind, FILE *out, const char *title)
{
    char *t = one_line(title);
    if (kind == CI_AZURE_DEVOPS) {
        fprintf(out, "##[group]%s\n", t);
    } else if (kind == CI_GITHUB) {
        /* The runner unescapes command data, so a literal %25 would lose its 25. */
        char *e = ci_gh_escape_data(t);
        fprintf(out, "::group::%s\n", e);
        free(e);
    } else {
        fprintf(out, "== %s ==\n", t);
    }
    free(t);
}

void ci_group_end(enum ci_kind kind, FILE *out)
{
    if (kind == CI_AZURE_DEVOPS)
        fputs("##[endgroup]\n", out);
    else if (kind == CI_GITHUB)
        fputs("::endgroup::\n", out);
}

int ci_summary(enum ci_kind kind, FILE *out, const char *(*getenv_fn)(const char *name),
               const char *md_path, struct mls_err *err)
{
    if (kind == CI_AZURE_DEVOPS) {
        /* The agent resolves a relative path against its own directory, not ours. */
        char abs[PATH_MAX];
        if (md_path[0] != '/' && !realpath(md_path, abs))
            return err_set(err, MLSTAGE_EIO, "cannot resolve %s: %s", md_path, strerror(errno));
        char *p = ci_vso_escape_message(md_path[0] == '/' ? md_path : abs);
        fprintf(out, "##vso[task.uploadsummary]%s\n", p);
        fflush(out);
        free(p);
        return 0;
    }
    if (kind != CI_GITHUB)
        return 0;
    const char *dest = getenv_fn("GITHUB_STEP_SUMMARY");
    if (!dest || !*dest)
        return 0; /* runners without job summaries: nothing to do */
    FILE *f = fopen(md_path, "rb");
    if (!f)
        return err_set(err, MLSTAGE_EIO, "cannot read %s: %s", md_path, strerror(errno));
    struct buf b;
    buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    int rc;
    if (b.len > GH_SUMMARY_LIMIT) {
        buf_free(&b);
        buf_printf(&b,
                   "\n> The summary (%s) is larger than GitHub's 1 MiB step summary limit; "
                   "see the run folder.\n",
                   md_path);
    }
    if (b.len && b.data[b.len - 1] != '\n')
        buf_putc(&b, '\n');
    rc = append_file(dest, b.data ? b.data : "", b.len, err);
    buf_free(&b);
    return rc;
}
