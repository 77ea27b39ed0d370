/* gitinfo.c — commit, branch, tags, dirty flag and origin of the repository a stage runs in. */
#include "gitinfo.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include <git2.h>

#include <mlstage/error.h>
#include <mlstage/export.h>

/*
 * Debian builds libgit2 with mbedTLS, and git_libgit2_init() parses the whole system CA
 * bundle for HTTPS (about 140 certificates, base64 and X.509: some 3 ms, a third of a no-op
 * stage). mlstage only ever reads the local repository with libgit2. The collector process
 * below sets skip_ca_bundle before it initialises libgit2; this definition of mbedTLS's
 * loader, found before libmbedx509's own (libmlstage is loaded ahead of libgit2's
 * dependencies), then loads nothing, so HTTPS attempted by libgit2 in that process would fail
 * certificate verification, never skip it. Everywhere else, and whenever the flag is clear,
 * the call goes on to mbedTLS; with a libgit2 built on OpenSSL nothing calls it at all.
 */
static int skip_ca_bundle;

#define MBEDTLS_ERR_X509_FILE_IO_ERROR (-0x2900)

struct mbedtls_x509_crt;
MLSTAGE_API int mbedtls_x509_crt_parse_file(struct mbedtls_x509_crt *chain, const char *path);

int mbedtls_x509_crt_parse_file(struct mbedtls_x509_crt *chain, const char *path)
{
    typedef int (*parse_fn)(struct mbedtls_x509_crt *, const char *);
    static parse_fn real;
    if (skip_ca_bundle)
        return 0;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "mbedtls_x509_crt_parse_file");
    return real ? real(chain, path) : MBEDTLS_ERR_X509_FILE_IO_ERROR;
}

void gitinfo_skip_ca_bundle(int skip)
{
    skip_ca_bundle = skip;
}

/*
 * libgit2 is initialised once per process and never shut down: its
 * initialisation costs milliseconds (mbedTLS seeding its generator, and
 * the CA bundle where it is not skipped), which every call would
 * otherwise pay again, and this runs on every stage.
 */
static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static int git_init_rc;

static void git_init_once(void)
{
    git_init_rc = git_libgit2_init();
}

static int git_ready(void)
{
    pthread_once(&git_once, git_init_once);
    return git_init_rc < 0 ? -1 : 0;
}

/* libgit2's own message for the last failure, never NULL. */
static const char *git_msg(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown libgit2 error";
}

static int git_fail(struct mls_err *err, const char *what, const char *where)
{
    return err_set(err, MLSTAGE_EIO, "git: %s in %s: %s", what, where, git_msg());
}

/*
 * Opens the repository containing `path`, searching upwards as git does
 * (and stopping at $GIT_CEILING_DIRECTORIES, as git does). Returns
 * GIT_ENOTFOUND when there is none.
 */
static int open_repo(git_repository **repo, const char *path)
{
    return git_repository_open_ext(repo, path, 0, getenv("GIT_CEILING_DIRECTORIES"));
}

/* The work tree's top level without the trailing '/', newly allocated; NULL for a bare repo. */
static char *workdir_of(git_repository *repo)
{
    const char *wd = git_repository_workdir(repo);
    if (!wd)
        return NULL;
    size_t n = strlen(wd);
    while (n > 1 && wd[n - 1] == '/')
        n--;
    return strndup(wd, n);
}

char *gitinfo_find_toplevel(const char *path)
{
    char dir[PATH_MAX];
    if (!realpath(path, dir))
        return NULL;
    for (;;) {
        char probe[PATH_MAX + 8];
        struct stat st;
        snprintf(probe, sizeof(probe), "%s/.git", dir);
        if (lstat(probe, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
            return xstrdup(dir);
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            return NULL;
        *slash = '\0';
    }
}

/*
 * The collection runs in a forked process, not a thread: the agent forks
 * plugin processes, and a fork taken while another thread holds a lock
 * inside libgit2 or OpenSSL leaves the child deadlocked on it. A process
 * forked before any thread exists shares nothing; it writes the JSON to a
 * pipe and exits.
 */
struct gitinfo_job {
    pid_t pid; /* the collector, 0 once reaped, or -1 when it ran inline */
    int fd;    /* its pipe, or -1 */
    int done;
    char *path;
    json_object *result;
    int rc;
    struct mls_err err;
};

static void job_inline(struct gitinfo_job *job)
{
    job->rc = gitinfo_collect(job->path, &job->result, &job->err);
}

struct gitinfo_job *gitinfo_start(const char *path)
{
    struct gitinfo_job *job = xcalloc(1, sizeof(*job));
    job->path = xstrdup(path);
    job->pid = -1;
    job->fd = -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return job;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return job;
    }
    if (pid == 0) {
        /* The collector: never outlives the agent, never runs its atexit work. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        gitinfo_skip_ca_bundle(1);
        json_object *info = NULL;
        struct mls_err err = {0};
        int rc = gitinfo_collect(path, &info, &err);
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "rc", json_object_new_int(rc));
        json_object_object_add(msg, "error", json_object_new_string(err.msg));
        json_object_object_add(msg, "git", info);
        const char *text = json_object_to_json_string_ext(msg, MLS_JSON_PLAIN);
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t n = write(fds[1], text + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        /* The answer ends here, not when the exit has torn the address space down. */
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    job->pid = pid;
    job->fd = fds[0];
    return job;
}

int gitinfo_poll_fd(const struct gitinfo_job *job)
{
    return job && !job->done && job->pid >= 0 ? job->fd : -1;
}

json_object *gitinfo_wait(struct gitinfo_job *job, struct mls_err *err)
{
    if (!job)
        return NULL;
    if (!job->done) {
        job->done = 1;
        if (job->pid < 0) {
            job_inline(job); /* no process could be made: do it here */
        } else {
            struct buf b;
            buf_init(&b);
            char chunk[8192];
            for (;;) {
                ssize_t n = read(job->fd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                buf_append(&b, chunk, (size_t)n);
            }
            close(job->fd);
            job->fd = -1;
            /* Still exiting, most likely: reaped by gitinfo_job_free, not waited for here. */
            if (waitpid(job->pid, NULL, WNOHANG) == job->pid)
                job->pid = 0;
            json_object *msg = b.data ? json_tokener_parse(b.data) : NULL, *v = NULL;
            buf_free(&b);
            if (!msg) {
                job->rc = err_set(&job->err, MLSTAGE_EINTERNAL,
                                  "the git metadata collector ended without an answer");
            } else {
                if (json_object_object_get_ex(msg, "rc", &v))
                    job->rc = json_object_get_int(v);
                if (json_object_object_get_ex(msg, "error", &v) && job->rc)
                    err_set(&job->err, job->rc, "%s", json_object_get_string(v));
                if (json_object_object_get_ex(msg, "git", &v) && v)
                    job->result = json_object_get(v);
                json_object_put(msg);
            }
        }
    }
    if (job->rc && err)
        err_set(err, job->rc, "%s", job->err.msg);
    return job->result;
}

void gitinfo_job_free(struct gitinfo_job *job)
{
    if (!job)
        return;
    gitinfo_wait(job, NULL);
    if (job->pid > 0)
        while (waitpid(job->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    json_object_put(job->result);
    free(job->path);
    free(job);
}

char *gitinfo_toplevel(const char *path)
{
    git_repository *repo = NULL;
    char *top = NULL;
    if (git_ready() < 0 || open_repo(&repo, path) < 0)
        goto done;
    top = workdir_of(repo);
done:
    git_repository_free(repo);
    return top;
}

static int is_scheme_char(char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

/* Length of "scheme" when `url` starts with "scheme://", else 0. */
static size_t scheme_len(const char *url)
{
    size_t i = 0;
    while (url[i] && is_scheme_char(url[i], i == 0))
        i++;
    return i > 0 && strncmp(url + i, "://", 3) == 0 ? i : 0;
}

/* git's rule: "host:path" is scp-like when the first ':' comes before any '/'. */
static int is_scp_like(const char *url)
{
    const char *colon = strchr(url, ':');
    const char *slash = strchr(url, '/');
    return colon && colon != url && (!slash || colon < slash);
}

char *gitinfo_strip_credentials(const char *url)
{
    if (!url)
        return NULL;
    struct buf b;
    buf_init(&b);
    size_t sl = scheme_len(url);
    if (sl) {
        /* userinfo is everything up to the last '@' of the authority. */
        const char *auth = url + sl + 3;
        size_t auth_len = strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *p = auth; p < auth + auth_len; p++)
            if (*p == '@')
                at = p;
        buf_append(&b, url, (size_t)(auth - url));
        buf_puts(&b, at ? at + 1 : auth);
    } else if (is_scp_like(url)) {
        const char *colon = strchr(url, ':');
        const char *host = url;
        for (const char *p = url; p < colon; p++)
            if (*p == '@')
                host = p + 1;
        const char *repo_path = colon + 1;
        buf_puts(&b, "ssh://");
        buf_append(&b, host, (size_t)(colon - host));
        if (*repo_path != '/')
            buf_putc(&b, '/');
        buf_puts(&b, repo_path);
    } else {
        buf_puts(&b, url);
    }
    return buf_steal(&b);
}

/*
 * The origin as a URL: credentials stripped, scp-like turned into ssh://,
 * and a local path (as `git clone /srv/repo` records it) turned into a
 * file:// URL, relative ones resolved against the top level.
 */
static char *origin_url(const char *url, const char *toplevel)
{
    if (scheme_len(url) || is_scp_like(url))
        return gitinfo_strip_credentials(url);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "file://");
    if (url[0] != '/') {
        char *abs = NULL;
        char *joined = NULL;
        if (asprintf(&joined, "%s/%s", toplevel, url) < 0)
            joined = NULL;
        if (joined)
            abs = realpath(joined, NULL);
        buf_puts(&b, abs ? abs : joined ? joined : url);
        free(abs);
        free(joined);
    } else {
        buf_puts(&b, url);
    }
    return buf_steal(&b);
}

/*
 * RFC 3339 in the signer's own offset, as git records it. git's "-0000"
 * (offset unknown) maps to RFC 3339's "-00:00", which means exactly that.
 */
#define SIG_TIME_LEN 64

static void sig_time(const git_time *when, char out[SIG_TIME_LEN])
{
    time_t local = (time_t)when->time + (time_t)when->offset * 60;
    struct tm tm;
    gmtime_r(&local, &tm);
    int off = when->offset < 0 ? -when->offset : when->offset;
    char zone[16];
    if (when->offset == 0 && when->sign != '-')
        snprintf(zone, sizeof(zone), "Z");
    else
        snprintf(zone, sizeof(zone), "%c%02d:%02d",
                 when->offset < 0 || when->sign == '-' ? '-' : '+', off / 60, off % 60);
    snprintf(out, SIG_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
}

static json_object *sig_json(const git_signature *sig)
{
    if (!sig)
        return NULL;
    char when[SIG_TIME_LEN];
    sig_time(&sig->when, when);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(sig->name ? sig->name : ""));
    json_object_object_add(o, "email", json_object_new_string(sig->email ? sig->email : ""));
    json_object_object_add(o, "time", json_object_new_string(when));
    return o;
}

static int cmp_json_strings(const void *a, const void *b)
{
    const json_object *const *ja = a;
    const json_object *const *jb = b;
    return strcmp(json_object_get_string((json_object *)*ja),
                  json_object_get_string((json_object *)*jb));
}

/*
 * Tags whose commit is `head`, sorted. Annotated tags are peeled; packed
 * refs usually carry the peeled id already, so most tags cost no object
 * read, and the rest cost a header read only unless they are tag objects.
 */
static int tags_at(git_repository *repo, const git_oid *head, json_object **out,
                   struct mls_err *err)
{
    int rc = 0;
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    git_odb *odb = NULL;
    json_object *tags = json_object_new_array();
    if (git_repository_odb(&odb, repo) < 0 ||
        git_reference_iterator_glob_new(&it, repo, "refs/tags/*") < 0) {
        rc = git_fail(err, "cannot list tags", git_repository_path(repo));
        goto done;
    }
    int gr;
    while ((gr = git_reference_next(&ref, it)) == 0) {
        const git_oid *target = git_reference_target(ref);
        const git_oid *peeled = git_reference_target_peel(ref);
        int at = 0;
        if (target && git_oid_equal(target, head)) {
            at = 1;
        } else if (peeled) {
            at = git_oid_equal(peeled, head);
        } else if (target) {
            size_t len;
            git_object_t type;
            git_object *obj = NULL;
            if (git_odb_read_header(&len, &type, odb, target) == 0 && type == GIT_OBJECT_TAG &&
                git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) == 0)
                at = git_oid_equal(git_object_id(obj), head);
            git_object_free(obj);
            /* A tag of a tree or blob, or a dangling one, is simply not at HEAD. */
            git_error_clear();
        }
        if (at)
            json_object_array_add(tags, json_object_new_string(git_reference_shorthand(ref)));
        git_reference_free(ref);
        ref = NULL;
    }
    if (gr != GIT_ITEROVER) {
        rc = git_fail(err, "cannot list tags", git_repository_path(repo));
        goto done;
    }
    json_object_array_sort(tags, cmp_json_strings);
done:
    git_reference_free(ref);
    git_reference_iterator_free(it);
    git_odb_free(odb);
    if (rc) {
        json_object_put(tags);
        tags = NULL;
    }
    *out = tags;
    return rc;
}

/*
 * Dirty = anything `git status` would list: staged or unstaged changes to
 * tracked files, or untracked files that are not ignored. The options are
 * the cheapest that still give that answer: untracked folders are not
 * recursed (one entry is enough; libgit2 still looks inside to tell a
 * folder of only ignored files apart), ignored paths are never walked,
 * submodules and rename detection are skipped. mlstage's own workspace
 * folder (.mlstage/, untracked unless the user ignores it) does not count:
 * running a stage must not make the next stage's commit look dirty.
 */
static int is_dirty(git_repository *repo, int *dirty, struct mls_err *err)
{
    int rc = 0;
    git_status_list *list = NULL;
    git_status_options opts;
    if (git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION) < 0) {
        rc = git_fail(err, "cannot set up status", git_repository_path(repo));
        goto done;
    }
    opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    opts.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    if (git_status_list_new(&list, repo, &opts) < 0) {
        rc = git_fail(err, "cannot read the status", git_repository_path(repo));
        goto done;
    }
    *dirty = 0;
    size_t n = git_status_list_entrycount(list);
    for (size_t i = 0; i < n && !*dirty; i++) {
        const git_status_entry *e = git_status_byindex(list, i);
        const git_diff_delta *d = e->index_to_workdir ? e->index_to_workdir : e->head_to_index;
        const char *path = d ? (d->new_file.path ? d->new_file.path : d->old_file.path) : NULL;
        if (e->status == GIT_STATUS_WT_NEW && path && strncmp(path, ".mlstage/", 9) == 0)
            continue;
        *dirty = 1;
    }
done:
    git_status_list_free(list);
    return rc;
}

/*
 * remote.origin.url as configured, read from a config snapshot rather
 * than through git_remote_lookup: the configured URL is the repository's
 * identity (url.*.insteadOf rewrites are local transport plumbing —
 * mirrors, injected tokens — that provenance should not record), it skips
 * parsing refspecs, and libgit2 1.5's remote lookup leaks PCRE2 match data
 * on every insteadOf pattern that does not match (fixed upstream in 1.6).
 */
static int origin_of(git_repository *repo, const char *toplevel, char **out, struct mls_err *err)
{
    int rc = 0;
    git_config *cfg = NULL;
    const char *url = NULL;
    *out = NULL;
    if (git_repository_config_snapshot(&cfg, repo) < 0) {
        rc = git_fail(err, "cannot read the configuration", toplevel);
        goto done;
    }
    int gr = git_config_get_string(&url, cfg, "remote.origin.url");
    if (gr == GIT_ENOTFOUND) {
        git_error_clear();
        goto done;
    }
    if (gr < 0) {
        rc = git_fail(err, "cannot read remote.origin.url", toplevel);
        goto done;
    }
    if (url && *url)
        *out = origin_url(url, toplevel);
done:
    git_config_free(cfg);
    return rc;
}

int gitinfo_collect(const char *path, json_object **out, struct mls_err *err)
{
    int rc = 0;
    git_repository *repo = NULL;
    git_reference *head = NULL;
    git_commit *commit = NULL;
    char *toplevel = NULL;
    char *origin = NULL;
    json_object *info = NULL;
    json_object *tags = NULL;
    int dirty = 0;
    *out = NULL;

    if (git_ready() < 0) {
        rc = err_set(err, MLSTAGE_EINTERNAL, "git: libgit2 failed to initialise: %s", git_msg());
        goto done;
    }
    int gr = open_repo(&repo, path);
    if (gr == GIT_ENOTFOUND) {
        git_error_clear();
        goto done;
    }
    if (gr == GIT_EOWNER) {
        rc = err_set(err, MLSTAGE_EIO,
                     "git: %s (git refuses it too; trust it with `git config --global --add "
                     "safe.directory <top level>`)",
                     git_msg());
        goto done;
    }
    if (gr < 0) {
        rc = git_fail(err, "cannot open the repository", path);
        goto done;
    }
    /* A bare repository has no work tree a stage could have been built from. */
    toplevel = workdir_of(repo);
    if (!toplevel)
        goto done;

    gr = git_repository_head(&head, repo);
    if (gr == GIT_EUNBORNBRANCH || gr == GIT_ENOTFOUND) {
        git_error_clear();
        goto done;
    }
    if (gr < 0) {
        rc = git_fail(err, "cannot read HEAD", toplevel);
        goto done;
    }
    const git_oid *oid = git_reference_target(head);
    if (!oid || git_commit_lookup(&commit, repo, oid) < 0) {
        rc = git_fail(err, "cannot read the HEAD commit", toplevel);
        goto done;
    }
    int detached = git_repository_head_detached(repo);
    if (detached < 0) {
        rc = git_fail(err, "cannot read HEAD", toplevel);
        goto done;
    }
    const char *branch =
        !detached && git_reference_is_branch(head) ? git_reference_shorthand(head) : NULL;
    if ((rc = tags_at(repo, oid, &tags, err)) != 0)
        goto done;
    if ((rc = is_dirty(repo, &dirty, err)) != 0)
        goto done;
    if ((rc = origin_of(repo, toplevel, &origin, err)) != 0)
        goto done;

    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), oid);
    const char *summary = git_commit_summary(commit);

    /* in-toto names a commit by the ref it was reached through, or by itself when detached. */
    struct buf uri;
    buf_init(&uri);
    if (origin)
        buf_printf(&uri, "git+%s@", origin);
    else
        buf_printf(&uri, "git+file://%s@", toplevel);
    buf_puts(&uri, branch ? git_reference_name(head) : hex);

    info = json_object_new_object();
    json_object_object_add(info, "commit", json_object_new_string(hex));
    json_object_object_add(info, "short_commit", json_object_new_string_len(hex, 7));
    json_object_object_add(info, "branch", branch ? json_object_new_string(branch) : NULL);
    json_object_object_add(info, "detached", json_object_new_boolean(detached));
    json_object_object_add(info, "tags", tags);
    tags = NULL;
    json_object_object_add(info, "dirty", json_object_new_boolean(dirty));
    json_object_object_add(info, "author", sig_json(git_commit_author(commit)));
    json_object_object_add(info, "committer", sig_json(git_commit_committer(commit)));
    json_object_object_add(info, "message", json_object_new_string(summary ? summary : ""));
    json_object_object_add(info, "origin", origin ? json_object_new_string(origin) : NULL);
    json_object_object_add(info, "uri", json_object_new_string(uri.data));
    json_object_object_add(info, "toplevel", json_object_new_string(toplevel));
    buf_free(&uri);
    *out = info;
done:
    json_object_put(tags);
    free(origin);
    free(toplevel);
    git_commit_free(commit);
    git_reference_free(head);
    git_repository_free(repo);
    return rc;
}
