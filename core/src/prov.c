/* prov.c — artefact digests, in-toto Statement v1 / SLSA Provenance v1 files, and their checks. */
#include "prov.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/version.h>

#include "fsutil.h"
#include "mask.h"

/*
 * builder.id names the trust base (mlstage on one kind of platform), not
 * one run: SLSA verifiers pin builder ids, and a per-run id could never be
 * pinned. The run itself is named by invocationId.
 */
#define PROV_BUILDER_BASE "https://github.com/mlstage/mlstage/builders/"

/* ---- paths --------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *join(const char *dir, const char *name)
{
    struct buf b;
    buf_init(&b);
    if (strcmp(dir, "/") == 0)
        buf_printf(&b, "/%s", name);
    else
        buf_printf(&b, "%s/%s", dir, name);
    return buf_steal(&b);
}

/*
 * The artefact path with trailing '/' removed; when its last component is
 * "." or ".." (which cannot name a subject), the resolved absolute path.
 */
static char *artifact_clean(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    char *clean = strndup(path, n);
    if (!clean)
        return NULL;
    const char *slash = strrchr(clean, '/');
    const char *base = slash ? slash + 1 : clean;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0') {
        char *abs = realpath(clean, NULL);
        if (abs) {
            free(clean);
            clean = abs;
        }
    }
    return clean;
}

/* Splits a cleaned path into its folder ("." when none) and last component. */
static void split_path(const char *clean, char **dir, char **base)
{
    const char *slash = strrchr(clean, '/');
    if (!slash) {
        *dir = xstrdup(".");
        *base = xstrdup(clean);
    } else if (slash == clean) {
        *dir = xstrdup("/");
        *base = xstrdup(slash + 1);
    } else {
        *dir = strndup(clean, (size_t)(slash - clean));
        *base = xstrdup(slash + 1);
        if (!*dir)
            *dir = xstrdup(".");
    }
}

char *prov_statement_path(const char *artifact_path)
{
    char *clean = artifact_clean(artifact_path);
    if (!clean)
        return NULL;
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s%s", clean, PROV_SUFFIX);
    free(clean);
    return buf_steal(&b);
}

/* ---- walking a directory artefact ---------------------------------------- */

enum entry_kind { ENTRY_FILE, ENTRY_LINK, ENTRY_OTHER };

struct entry {
    char *name; /* relative to the artefact's parent, '/'-separated */
    enum entry_kind kind;
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static void entries_add(struct entries *e, char *name, enum entry_kind kind)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    e->v[e->n].name = name;
    e->v[e->n].kind = kind;
    e->n++;
}

static void entries_free(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name);
    free(e->v);
    e->v = NULL;
    e->n = e->cap = 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * `name` is the statement of a nested artefact: "X.intoto.json" with X
 * beside it. Those are written after the outer artefact is hashed, so they
 * cannot be part of it. A lone "*.intoto.json" is an ordinary file and
 * stays covered.
 */
static int is_nested_statement(const char *name, char **sorted, size_t n)
{
    if (!has_suffix(name, PROV_SUFFIX))
        return 0;
    size_t len = strlen(name) - strlen(PROV_SUFFIX);
    if (len == 0)
        return 0;
    char *artefact = strndup(name, len);
    int found = artefact && bsearch(&artefact, sorted, n, sizeof(char *), cmp_str_ptr) != NULL;
    free(artefact);
    return found;
}

/*
 * Lists everything below root/rel, descending into folders and never
 * following symlinks; symlinks and special files are listed with their
 * kind so that callers decide.
 */
static int walk(const char *root, const char *rel, struct entries *out, struct mls_err *err)
{
    int rc = 0;
    char *dir_path = join(root, rel);
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = opendir(dir_path);
    if (!d) {
        rc = err_set(err, MLSTAGE_EIO, "cannot list %s: %s", dir_path, strerror(errno));
        goto done;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
        errno = 0;
    }
    if (errno != 0) {
        rc = err_set(err, MLSTAGE_EIO, "cannot list %s: %s", dir_path, strerror(errno));
        goto done;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_str_ptr);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (is_nested_statement(names[i], names, n))
            continue;
        char *child_rel = join(rel, names[i]);
        char *child_path = join(root, child_rel);
        struct stat st;
        if (lstat(child_path, &st) != 0) {
            rc = err_set(err, MLSTAGE_EIO, "cannot stat %s: %s", child_path, strerror(errno));
            free(child_rel);
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(root, child_rel, out, err);
            free(child_rel);
        } else {
            entries_add(out, child_rel,
                        S_ISREG(st.st_mode)   ? ENTRY_FILE
                        : S_ISLNK(st.st_mode) ? ENTRY_LINK
                                              : ENTRY_OTHER);
        }
        free(child_path);
    }
done:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir_path);
    return rc;
}

/* ---- hashing -------------------------------------------------------------- */

static int subject_add(json_object *subjects, const char *root, const char *name,
                       struct mls_err *err)
{
    int rc = 0;
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    char *path = join(root, name);
    if ((rc = mlstage_sha256_file(path, hex, &size)) != 0) {
        rc = err_set(err, rc == MLSTAGE_ENOTFOUND ? MLSTAGE_ENOTFOUND : MLSTAGE_EIO,
                     "cannot hash %s: %s", path, strerror(errno));
        goto done;
    }
    json_object *subject = json_object_new_object();
    json_object *digest = json_object_new_object();
    json_object *annotations = json_object_new_object();
    json_object_object_add(digest, "sha256", json_object_new_string(hex));
    json_object_object_add(annotations, "size", json_object_new_int64((int64_t)size));
    json_object_object_add(subject, "name", json_object_new_string(name));
    json_object_object_add(subject, "digest", digest);
    json_object_object_add(subject, "annotations", annotations);
    json_object_array_add(subjects, subject);
done:
    free(path);
    return rc;
}

static const char *subject_name(json_object *subject)
{
    json_object *name = NULL;
    if (!json_object_object_get_ex(subject, "name", &name))
        return NULL;
    return json_object_get_string(name);
}

static int cmp_subjects(const void *a, const void *b)
{
    const char *na = subject_name(*(json_object *const *)a);
    const char *nb = subject_name(*(json_object *const *)b);
    return strcmp(na ? na : "", nb ? nb : "");
}

int prov_hash_artifact(const char *path, json_object **subjects, struct mls_err *err)
{
    int rc = 0;
    char *clean = artifact_clean(path);
    char *dir = NULL, *base = NULL;
    struct entries entries = {0};
    json_object *list = json_object_new_array();
    *subjects = NULL;
    if (!clean) {
        rc = err_set(err, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    split_path(clean, &dir, &base);
    if (*base == '\0') {
        rc = err_set(err, MLSTAGE_EINPUT, "%s cannot be an artefact", path);
        goto done;
    }
    struct stat st;
    if (lstat(clean, &st) != 0) {
        rc = err_set(err, errno == ENOENT ? MLSTAGE_ENOTFOUND : MLSTAGE_EIO, "artefact %s: %s",
                     path, strerror(errno));
        goto done;
    }
    if (S_ISLNK(st.st_mode)) {
        rc = err_set(err, MLSTAGE_EINPUT,
                     "artefact %s is a symbolic link; declare the file or folder itself", path);
        goto done;
    }
    if (S_ISREG(st.st_mode)) {
        rc = subject_add(list, dir, base, err);
        goto done;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = err_set(err, MLSTAGE_EINPUT, "artefact %s is not a regular file or a folder", path);
        goto done;
    }
    if ((rc = walk(dir, base, &entries, err)) != 0)
        goto done;
    for (size_t i = 0; i < entries.n && rc == 0; i++) {
        /* A link or device inside a model folder would make the digest lie about its bytes. */
        if (entries.v[i].kind == ENTRY_LINK)
            rc = err_set(err, MLSTAGE_EINPUT,
                         "artefact %s: %s is a symbolic link (links are not followed)", path,
                         entries.v[i].name);
        else if (entries.v[i].kind == ENTRY_OTHER)
            rc = err_set(err, MLSTAGE_EINPUT, "artefact %s: %s is not a regular file", path,
                         entries.v[i].name);
        else
            rc = subject_add(list, dir, entries.v[i].name, err);
    }
    if (rc)
        goto done;
    if (json_object_array_length(list) == 0) {
        rc = err_set(err, MLSTAGE_EINPUT, "artefact folder %s holds no files", path);
        goto done;
    }
    /* Byte order of the whole name, as `LC_ALL=C sort` would list them. */
    json_object_array_sort(list, cmp_subjects);
done:
    if (rc == 0) {
        *subjects = list;
        list = NULL;
    }
    json_object_put(list);
    entries_free(&entries);
    free(dir);
    free(base);
    free(clean);
    return rc;
}

/* ---- statements ----------------------------------------------------------- */

static json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* A member of `o` when it is a non-empty string, else NULL. */
static const char *get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return *s ? s : NULL;
}

/*
 * The manifest as recorded: relative to the repository's top level when it
 * lies inside it (so the statement means the same on every clone), else as
 * an absolute path.
 */
static char *manifest_display(const char *manifest_path, json_object *git)
{
    char *abs = realpath(manifest_path, NULL);
    const char *top = get_str(git, "toplevel");
    char *shown = NULL;
    if (abs && top) {
        size_t n = strlen(top);
        if (strncmp(abs, top, n) == 0 && abs[n] == '/')
            shown = xstrdup(abs + n + 1);
    }
    if (!shown)
        shown = xstrdup(abs ? abs : manifest_path);
    free(abs);
    return shown;
}

static json_object *git_dependency(json_object *git)
{
    const char *uri = get_str(git, "uri");
    const char *commit = get_str(git, "commit");
    if (!uri || !commit)
        return NULL;
    json_object *dep = json_object_new_object();
    json_object *digest = json_object_new_object();
    json_object *ann = json_object_new_object();
    json_object_object_add(digest, "gitCommit", json_object_new_string(commit));
    static const char *const keys[] = {"branch", "detached",  "tags",    "dirty",
                                       "author", "committer", "message", "origin"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(git, keys[i], &v))
            json_object_object_add(ann, keys[i], json_object_get(v));
    }
    json_object_object_add(dep, "uri", json_object_new_string(uri));
    json_object_object_add(dep, "digest", digest);
    json_object_object_add(dep, "annotations", ann);
    return dep;
}

static char *builder_id(json_object *ci)
{
    const char *system = get_str(ci, "system");
    const char *kind = "local";
    if (system && strcmp(system, "github") == 0)
        kind = "github-actions";
    else if (system && strcmp(system, "azure-devops") == 0)
        kind = "azure-devops";
    struct buf b;
    buf_init(&b);
    buf_printf(&b, PROV_BUILDER_BASE "%s@v%s", kind, MLSTAGE_VERSION);
    return buf_steal(&b);
}

/* The CI run URL with our run id as fragment (one CI run may run many stages), else ours. */
static char *invocation_id(json_object *ci, const char *run_id)
{
    const char *run_url = get_str(ci, "run_url");
    struct buf b;
    buf_init(&b);
    if (run_url && run_id)
        buf_printf(&b, "%s#%s", run_url, run_id);
    else if (run_url)
        buf_puts(&b, run_url);
    else if (run_id)
        buf_printf(&b, "mlstage:run:%s", run_id);
    return b.data ? buf_steal(&b) : NULL;
}

json_object *prov_statement_new(json_object *subjects, const struct prov_meta *meta)
{
    char *manifest = meta->manifest_path ? manifest_display(meta->manifest_path, meta->git) : NULL;
    char *builder = builder_id(meta->ci);
    char *invocation = invocation_id(meta->ci, meta->run_id);

    json_object *external = json_object_new_object();
    json_object_object_add(external, "task", jstr(meta->task));
    json_object_object_add(external, "manifest", jstr(manifest));
    json_object_object_add(external, "plugin", jstr(meta->plugin));
    json_object_object_add(external, "backend", jstr(meta->backend));
    json_object_object_add(external, "inputs",
                           meta->inputs ? json_object_get(meta->inputs) : json_object_new_object());
    json_object_object_add(external, "vars",
                           meta->vars ? json_object_get(meta->vars) : json_object_new_object());

    json_object *internal = json_object_new_object();
    json_object_object_add(internal, "plugin_version", jstr(meta->plugin_version));
    json_object_object_add(internal, "mlstage_version", json_object_new_string(MLSTAGE_VERSION));
    json_object_object_add(internal, "run_id", jstr(meta->run_id));
    json_object_object_add(internal, "git", json_object_get(meta->git));
    json_object_object_add(internal, "ci", json_object_get(meta->ci));

    json_object *deps = json_object_new_array();
    json_object *git_dep = meta->git ? git_dependency(meta->git) : NULL;
    if (git_dep)
        json_object_array_add(deps, git_dep);
    if (manifest) {
        json_object *dep = json_object_new_object();
        char *uri = NULL;
        if (asprintf(&uri, "file:%s", manifest) < 0)
            uri = NULL;
        json_object_object_add(dep, "uri", jstr(uri));
        free(uri);
        if (meta->manifest_sha256) {
            json_object *digest = json_object_new_object();
            json_object_object_add(digest, "sha256", json_object_new_string(meta->manifest_sha256));
            json_object_object_add(dep, "digest", digest);
        }
        json_object_array_add(deps, dep);
    }

    json_object *build_def = json_object_new_object();
    json_object_object_add(build_def, "buildType", json_object_new_string(PROV_BUILD_TYPE));
    json_object_object_add(build_def, "externalParameters", external);
    json_object_object_add(build_def, "internalParameters", internal);
    json_object_object_add(build_def, "resolvedDependencies", deps);

    json_object *version = json_object_new_object();
    json_object_object_add(version, "mlstage", json_object_new_string(MLSTAGE_VERSION));
    json_object *builder_obj = json_object_new_object();
    json_object_object_add(builder_obj, "id", json_object_new_string(builder));
    json_object_object_add(builder_obj, "version", version);

    json_object *metadata = json_object_new_object();
    if (invocation)
        json_object_object_add(metadata, "invocationId", json_object_new_string(invocation));
    char when[32];
    if (meta->started > 0) {
        time_rfc3339(meta->started, when);
        json_object_object_add(metadata, "startedOn", json_object_new_string(when));
    }
    if (meta->finished > 0) {
        time_rfc3339(meta->finished, when);
        json_object_object_add(metadata, "finishedOn", json_object_new_string(when));
    }
    /* An extension field, named <vendor>_<field> as SLSA asks. */
    if (meta->status)
        json_object_object_add(metadata, "mlstage_status", json_object_new_string(meta->status));

    json_object *run_details = json_object_new_object();
    json_object_object_add(run_details, "builder", builder_obj);
    json_object_object_add(run_details, "metadata", metadata);

    json_object *predicate = json_object_new_object();
    json_object_object_add(predicate, "buildDefinition", build_def);
    json_object_object_add(predicate, "runDetails", run_details);

    json_object *st = json_object_new_object();
    json_object_object_add(st, "_type", json_object_new_string(PROV_STATEMENT_TYPE));
    json_object_object_add(st, "subject",
                           subjects ? json_object_get(subjects) : json_object_new_array());
    json_object_object_add(st, "predicateType", json_object_new_string(PROV_PREDICATE_TYPE));
    json_object_object_add(st, "predicate", predicate);

    free(invocation);
    free(builder);
    free(manifest);
    return st;
}

int prov_statement_write(const char *artifact_path, json_object *subjects,
                         const struct prov_meta *meta, struct mls_err *err)
{
    int rc = 0;
    json_object *st = prov_statement_new(subjects, meta);
    char *path = prov_statement_path(artifact_path);
    char *masked = NULL;
    if (!path) {
        rc = err_set(err, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    const char *text = json_object_to_json_string_ext(st, MLS_JSON_PRETTY);
    size_t len = 0;
    /* Inputs and vars carry expanded values: a secret must never reach the file. */
    masked = mask_apply(text, strlen(text), &len);
    masked = xrealloc(masked, len + 2);
    masked[len++] = '\n';
    masked[len] = '\0';
    rc = fs_write_atomic(path, masked, len, err);
done:
    free(masked);
    free(path);
    json_object_put(st);
    return rc;
}

/* ---- verification --------------------------------------------------------- */

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != MLSTAGE_SHA256_HEX_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

/*
 * A subject name must stay inside the statement's folder: relative, no
 * empty, "." or ".." component. A crafted statement must not make verify
 * read /etc/shadow or ../../secrets.
 */
static int is_safe_name(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return 0;
    const char *p = name;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += n;
        if (*p == '/')
            p++;
        if (*p == '\0' && p[-1] == '/')
            return 0;
    }
    return 1;
}

/* Reads and checks the statement; *subjects is borrowed from *doc. */
static int load_statement(const char *path, json_object **doc, json_object **subjects,
                          struct mls_err *err)
{
    int rc = mlstage_json_read(path, doc);
    if (rc == MLSTAGE_ENOTFOUND) {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: no such statement", path);
        goto done;
    }
    if (rc) {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: unreadable or not JSON", path);
        goto done;
    }
    const char *type = get_str(*doc, "_type");
    if (!type || strcmp(type, PROV_STATEMENT_TYPE) != 0) {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: _type is not %s", path, PROV_STATEMENT_TYPE);
        goto done;
    }
    const char *ptype = get_str(*doc, "predicateType");
    if (!ptype || strcmp(ptype, PROV_PREDICATE_TYPE) != 0) {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: predicateType is not %s", path, PROV_PREDICATE_TYPE);
        goto done;
    }
    if (!json_object_object_get_ex(*doc, "subject", subjects) ||
        !json_object_is_type(*subjects, json_type_array) ||
        json_object_array_length(*subjects) == 0) {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: no subjects", path);
        goto done;
    }
    size_t n = json_object_array_length(*subjects);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(*subjects, i);
        json_object *digest = NULL;
        const char *name = get_str(s, "name");
        if (!is_safe_name(name)) {
            rc = err_set(err, MLSTAGE_EINPUT,
                         "%s: subject %zu has no name or one outside its folder", path, i);
            goto done;
        }
        if (!json_object_object_get_ex(s, "digest", &digest) ||
            !is_hex64(get_str(digest, "sha256"))) {
            rc = err_set(err, MLSTAGE_EINPUT, "%s: subject %s has no sha256 digest", path, name);
            goto done;
        }
    }
done:
    if (rc) {
        json_object_put(*doc);
        *doc = NULL;
        *subjects = NULL;
    }
    return rc;
}

/* Re-hashes one subject; returns 1 when it matches. */
static int check_subject(const char *dir, json_object *subject, json_object *results)
{
    const char *name = get_str(subject, "name");
    json_object *digest = json_object_object_get(subject, "digest");
    const char *expected = get_str(digest, "sha256");
    char *path = join(dir, name);
    const char *status = "ok";
    const char *reason = NULL;
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    hex[0] = '\0';
    struct stat st;
    if (lstat(path, &st) != 0) {
        status = errno == ENOENT || errno == ENOTDIR ? "missing" : "unreadable";
        reason = strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        /* Hashing never follows links, so a file swapped for one is a change. */
        status = "mismatch";
        reason = "not a regular file";
    } else if (mlstage_sha256_file(path, hex, NULL) != 0) {
        status = "unreadable";
        reason = strerror(errno);
        hex[0] = '\0';
    } else if (strcasecmp(hex, expected) != 0) {
        status = "mismatch";
    }
    json_object *r = json_object_new_object();
    json_object_object_add(r, "name", json_object_new_string(name));
    json_object_object_add(r, "expected", json_object_new_string(expected));
    json_object_object_add(r, "actual", hex[0] ? json_object_new_string(hex) : NULL);
    json_object_object_add(r, "status", json_object_new_string(status));
    if (reason)
        json_object_object_add(r, "error", json_object_new_string(reason));
    json_object_array_add(results, r);
    free(path);
    return strcmp(status, "ok") == 0;
}

int prov_verify(const char *path, json_object **report, struct mls_err *err)
{
    int rc = 0;
    char *clean = artifact_clean(path);
    char *statement = NULL, *artifact = NULL, *dir = NULL, *base = NULL;
    json_object *doc = NULL, *subjects = NULL;
    json_object *results = json_object_new_array();
    json_object *unexpected = json_object_new_array();
    json_object *listed = json_object_new_object();
    struct entries entries = {0};
    size_t bad = 0;
    const char *first_bad = NULL;
    if (report)
        *report = NULL;
    if (!clean) {
        rc = err_set(err, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }

    /* PATH is the artefact when a statement sits beside it, else the statement itself. */
    struct stat st;
    statement = prov_statement_path(clean);
    if (lstat(statement, &st) == 0) {
        artifact = xstrdup(clean);
    } else if (has_suffix(clean, PROV_SUFFIX)) {
        free(statement);
        statement = xstrdup(clean);
        artifact = strndup(clean, strlen(clean) - strlen(PROV_SUFFIX));
    } else {
        rc = err_set(err, MLSTAGE_EINPUT, "%s: no provenance statement (%s)", path, statement);
        goto done;
    }
    if ((rc = load_statement(statement, &doc, &subjects, err)) != 0)
        goto done;

    /* Subject names are relative to the statement's folder, which is the artefact's parent. */
    split_path(artifact, &dir, &base);
    size_t n = json_object_array_length(subjects);
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(subjects, i);
        json_object_object_add(listed, get_str(s, "name"), NULL);
        if (!check_subject(dir, s, results)) {
            bad++;
            if (!first_bad)
                first_bad = get_str(s, "name");
        }
    }

    /* A file slipped into a model folder changes the model as surely as an edited one. */
    if (lstat(artifact, &st) == 0 && S_ISDIR(st.st_mode)) {
        if ((rc = walk(dir, base, &entries, err)) != 0)
            goto done;
        for (size_t i = 0; i < entries.n; i++) {
            if (json_object_object_get_ex(listed, entries.v[i].name, NULL))
                continue;
            json_object_array_add(unexpected, json_object_new_string(entries.v[i].name));
            if (!first_bad)
                first_bad = entries.v[i].name;
        }
    }

    size_t extra = json_object_array_length(unexpected);
    if (bad || extra)
        rc = err_set(err, MLSTAGE_EFAIL,
                     "%s does not match %s: %zu of %zu files changed or missing, %zu unexpected "
                     "(first: %s)",
                     artifact, statement, bad, n, extra, first_bad ? first_bad : "?");
done:
    if (report && (rc == 0 || rc == MLSTAGE_EFAIL)) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "statement", jstr(statement));
        json_object_object_add(r, "artifact", jstr(artifact));
        json_object_object_add(r, "ok", json_object_new_boolean(rc == 0));
        json_object_object_add(r, "subjects", json_object_get(results));
        json_object_object_add(r, "unexpected", json_object_get(unexpected));
        *report = r;
    }
    entries_free(&entries);
    json_object_put(listed);
    json_object_put(unexpected);
    json_object_put(results);
    json_object_put(doc);
    free(base);
    free(dir);
    free(artifact);
    free(statement);
    free(clean);
    return rc;
}
