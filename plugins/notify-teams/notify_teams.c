/* notify_teams.c — the notify-teams plugin: posts an Adaptive Card about a model to a Teams
 * webhook.
 *
 * One behaviour for both backends: a Teams Workflows webhook is the same
 * service whether the stage ran locally or against Azure ML, so this plugin
 * has no per-backend table (see STYLE.md, "Backends as tables").
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mlstage/mlstage.h>

#include "card.h"
#include "metrics.h"

#define PLUGIN_VERSION "1.0.0"
/* Each attempt; the whole delivery is bounded by the deadline_s input. */
#define ATTEMPT_TIMEOUT_S 30.0
/* Bytes of the webhook's answer quoted when it refuses a card. */
#define ANSWER_EXCERPT_MAX 300

/*
 * Every optional input also takes null, which means "not given": a manifest
 * writes `approval_url: ${var.approval_url:-}` to leave it out when unset.
 */
static const char input_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"webhook_url\"],"
    "\"properties\": {"
    "  \"webhook_url\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"The Teams Workflows webhook URL. A secret: pass"
    " ${secret.TEAMS_WEBHOOK_URL}. https:// only (http:// to a loopback host for tests).\"},"
    "  \"title\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"Card title; default: Model MODEL VERSION, or mlstage: TASK.\"},"
    "  \"model\": {\"type\": [\"string\", \"null\"], \"description\": \"Model name.\"},"
    "  \"version\": {\"type\": [\"string\", \"integer\", \"null\"],"
    "    \"description\": \"Model version, e.g. ${stages.register.outputs.version}.\"},"
    "  \"decision\": {\"enum\": [\"promote\", \"reject\", \"none\", null],"
    "    \"description\": \"The evaluation's decision (or give promote).\"},"
    "  \"promote\": {\"enum\": [true, false, \"true\", \"false\", null],"
    "    \"description\": \"e.g. ${stages.evaluate.outputs.promote}: true is decision promote,"
    " false is reject.\"},"
    "  \"reason\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"Why: shown under the decision, shortened to fit the card.\"},"
    "  \"metrics\": {\"type\": [\"object\", \"array\", \"string\", \"null\"],"
    "    \"description\": \"{metric: {candidate, champion, delta, direction}} or {metric: value},"
    " or a list of {name, candidate, champion, delta, direction}; also as JSON text.\"},"
    "  \"approval_url\": {\"type\": [\"string\", \"null\"], \"pattern\": "
    "\"^https?://[^[:space:]]+$\","
    "    \"description\": \"Where a reviewer approves the promotion: the card's main button.\"},"
    "  \"mention\": {\"anyOf\": [{\"type\": \"null\"},"
    "    {\"type\": \"string\", \"pattern\": \"^[^[:space:]<>@]+@[^[:space:]<>@]+$\"},"
    "    {\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"id\"],"
    "     \"properties\": {"
    "       \"id\": {\"type\": \"string\", \"pattern\": \"^[^[:space:]<>]+$\"},"
    "       \"name\": {\"type\": \"string\", \"pattern\": \"^[^<>]+$\"}}}],"
    "    \"description\": \"Who to @mention: a UPN (jane@contoso.com), or {id, name} where id is"
    " a UPN or an Entra object id.\"},"
    "  \"max_metrics\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100, \"default\": 25,"
    "    \"description\": \"Metric rows shown at most; fewer when the card would pass 28 KB.\"},"
    "  \"max_attempts\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10, \"default\": 5,"
    "    \"description\": \"Attempts on 408/429/5xx and connection errors.\"},"
    "  \"deadline_s\": {\"type\": \"number\", \"minimum\": 1, \"maximum\": 3600,"
    "    \"default\": 120, \"description\": \"Seconds for all attempts and waits together.\"},"
    "  \"fail_on_error\": {\"type\": \"boolean\", \"default\": true,"
    "    \"description\": \"false: a card that could not be delivered is a warning (exit 0,"
    " status failed), not a failed stage.\"}"
    "}}";

/* Strings the card borrows, owned here for the run. */
struct notify {
    char *title;
    char *mention_name;
    char *commit_url;
    char *branch;
    char *run_label;
    char *run_url;
    char *footer;
    struct metric_table metrics;
};

static void notify_free(struct notify *n)
{
    free(n->title);
    free(n->mention_name);
    free(n->commit_url);
    free(n->branch);
    free(n->run_label);
    free(n->run_url);
    free(n->footer);
    metrics_free(&n->metrics);
}

/* A string member, or NULL when it is absent or null. Borrowed. */
static const char *jstr(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!obj || !json_object_object_get_ex(obj, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static int prefix_nocase(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The host of a URL's authority, bracketed when IPv6; `out` gets "" when there is none. */
static void url_host(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    out[0] = '\0';
    if (!p)
        return;
    p += 3;
    size_t auth_len = strcspn(p, "/?#");
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@') {
            auth_len -= i + 1;
            p += i + 1;
            i = (size_t)-1;
        }
    size_t host_len = p[0] == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/?#");
    if (host_len > auth_len)
        host_len = auth_len;
    if (host_len < cap)
        snprintf(out, cap, "%.*s", (int)host_len, p);
}

/*
 * Refuses what the HTTP client would refuse anyway — so that a dry run,
 * which sends nothing, says so too. The URL itself is never quoted.
 */
static int webhook_url_check(struct mlstage_ctx *ctx, const char *url)
{
    char host[256];
    url_host(url, host, sizeof(host));
    if (prefix_nocase(url, "https://") && host[0])
        return 0;
    if (prefix_nocase(url, "http://") &&
        (strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
         strcmp(host, "[::1]") == 0))
        return 0;
    return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                             "inputs.webhook_url: expected an https:// URL (http:// only to a "
                             "loopback host); the value is a secret and is not shown");
}

static int decision_of(struct mlstage_ctx *ctx, enum card_decision *out)
{
    const char *decision = mlstage_input_string(ctx, "decision", NULL);
    /* A dry run of a pipeline does not know the decision yet. */
    json_object *promote =
        mlstage_input_pending(ctx, "promote") ? NULL : mlstage_input(ctx, "promote");
    enum card_decision from_decision = CARD_DECISION_NONE, from_promote = CARD_DECISION_NONE;
    if (decision)
        from_decision = strcmp(decision, "promote") == 0  ? CARD_DECISION_PROMOTE
                        : strcmp(decision, "reject") == 0 ? CARD_DECISION_REJECT
                                                          : CARD_DECISION_NONE;
    if (promote) {
        int yes = json_object_is_type(promote, json_type_boolean)
                      ? json_object_get_boolean(promote)
                      : strcmp(json_object_get_string(promote), "true") == 0;
        from_promote = yes ? CARD_DECISION_PROMOTE : CARD_DECISION_REJECT;
    }
    if (decision && promote && from_decision != from_promote)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.decision \"%s\" contradicts inputs.promote %s: give one "
                                 "of them",
                                 decision, json_object_get_string(promote));
    *out = decision ? from_decision : from_promote;
    return 0;
}

/* The mention's id (borrowed) and display name (owned), or NULLs when there is none. */
static int mention_of(struct mlstage_ctx *ctx, const char **id, char **name)
{
    json_object *m = mlstage_input(ctx, "mention");
    *id = NULL;
    *name = NULL;
    if (!m)
        return 0;
    if (json_object_is_type(m, json_type_string)) {
        *id = json_object_get_string(m);
    } else {
        *id = jstr(m, "id");
        const char *given = jstr(m, "name");
        if (given && !(*name = strdup(given)))
            return MLSTAGE_ENOMEM;
    }
    if (!*name) {
        /* A UPN's local part reads as a name; an object id does not. */
        const char *at = strchr(*id, '@');
        if (!at)
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.mention.name: required when the id is not a UPN "
                                     "(name@domain)");
        if (!(*name = strndup(*id, (size_t)(at - *id))))
            return MLSTAGE_ENOMEM;
    }
    return 0;
}

/*
 * The web page of a repository from its origin — https and http as they
 * are, ssh:// (and git://) as https on the same host, Azure Repos' ssh form
 * as its https one — or NULL when there is no such page (a file:// origin).
 */
static char *forge_web_url(const char *origin)
{
    const char *rest, *scheme = "https://";
    int over_ssh = 0;
    if (prefix_nocase(origin, "https://") || prefix_nocase(origin, "http://")) {
        scheme = prefix_nocase(origin, "https://") ? "https://" : "http://";
        rest = strstr(origin, "://") + 3;
    } else if (prefix_nocase(origin, "ssh://") || prefix_nocase(origin, "git://")) {
        over_ssh = 1;
        rest = origin + 6;
    } else {
        return NULL;
    }
    size_t auth_len = strcspn(rest, "/");
    const char *at = memchr(rest, '@', auth_len);
    if (at) {
        auth_len -= (size_t)(at + 1 - rest);
        rest = at + 1;
    }
    /* An ssh port is not the web server's. */
    size_t host_len = over_ssh ? strcspn(rest, ":/") : auth_len;
    const char *path = rest + auth_len;
    size_t path_len = strlen(path);
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    if (path_len >= 4 && strncmp(path + path_len - 4, ".git", 4) == 0)
        path_len -= 4;
    if (host_len == 0 || path_len <= 1)
        return NULL;
    char *url = NULL;
    /* Azure Repos over ssh: ssh.dev.azure.com/v3/ORG/PROJECT/REPO. */
    if (host_len == 17 && strncasecmp(rest, "ssh.dev.azure.com", 17) == 0 &&
        strncmp(path, "/v3/", 4) == 0) {
        const char *org = path + 4;
        const char *project = memchr(org, '/', path_len - 4);
        const char *repo =
            project ? memchr(project + 1, '/', path_len - (size_t)(project + 1 - path)) : NULL;
        if (!repo)
            return NULL;
        if (asprintf(&url, "https://dev.azure.com/%.*s/_git/%.*s", (int)(repo - org), org,
                     (int)(path_len - (size_t)(repo + 1 - path)), repo + 1) < 0)
            return NULL;
        return url;
    }
    if (asprintf(&url, "%s%.*s%.*s", scheme, (int)host_len, rest, (int)path_len, path) < 0)
        return NULL;
    return url;
}

static char *commit_url_of(const char *origin, const char *commit)
{
    char *web = origin ? forge_web_url(origin) : NULL;
    char *url = NULL;
    if (!web)
        return NULL;
    /* Bitbucket names the page "commits"; GitHub, Azure Repos and GitLab "commit". */
    const char *page = strstr(web, "://bitbucket.org/") ? "commits" : "commit";
    if (asprintf(&url, "%s/%s/%s", web, page, commit) < 0)
        url = NULL;
    free(web);
    return url;
}

/* file:// URL of a local folder, each byte outside the unreserved set percent-encoded. */
static char *file_url(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path);
    char *out = malloc(7 + 3 * n + 1);
    if (!out)
        return NULL;
    char *o = out + sprintf(out, "file://");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (isalnum(*p) || strchr("-._~/", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Commit, branch and author from the context's git facts: never from inputs. */
static int git_facts(struct mlstage_ctx *ctx, struct card_facts *f, struct notify *n)
{
    json_object *git = mlstage_git(ctx), *author = NULL, *dirty = NULL;
    if (!git || !jstr(git, "commit"))
        return 0;
    f->commit = jstr(git, "commit");
    f->commit_subject = jstr(git, "message");
    f->dirty = json_object_object_get_ex(git, "dirty", &dirty) && json_object_get_boolean(dirty);
    if (json_object_object_get_ex(git, "author", &author))
        f->author = jstr(author, "name");
    n->commit_url = commit_url_of(jstr(git, "origin"), f->commit);
    f->commit_url = n->commit_url;

    /* CI checks out a detached HEAD; the runner still knows which ref it built. */
    const char *branch = jstr(git, "branch");
    const char *ref = jstr(mlstage_ci(ctx), "ref");
    if (!branch && ref)
        branch = strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : ref;
    if (branch && !(n->branch = strdup(branch)))
        return MLSTAGE_ENOMEM;
    f->branch = n->branch;
    return 0;
}

/* The CI run's page, or the local run folder when there is no CI. */
static int run_facts(struct mlstage_ctx *ctx, struct card_facts *f, struct notify *n)
{
    json_object *ci = mlstage_ci(ctx);
    const char *run_url = jstr(ci, "run_url");
    const char *system = jstr(ci, "system");
    const char *run_id = jstr(ci, "run_id");
    if (run_url) {
        const char *name = system && strcmp(system, "azure-devops") == 0 ? "Azure DevOps run"
                           : system && strcmp(system, "github") == 0     ? "GitHub Actions run"
                                                                         : "CI run";
        if (asprintf(&n->run_label, "%s %s", name, run_id ? run_id : "") < 0)
            n->run_label = NULL;
        n->run_url = strdup(run_url);
    } else {
        n->run_label = strdup(mlstage_run_dir(ctx));
        n->run_url = file_url(mlstage_run_dir(ctx));
    }
    if (!n->run_label || !n->run_url)
        return MLSTAGE_ENOMEM;
    f->run_label = n->run_label;
    f->run_url = n->run_url;
    return 0;
}

static int facts_gather(struct mlstage_ctx *ctx, struct card_facts *f, struct notify *n)
{
    int rc;
    memset(f, 0, sizeof(*f));
    f->model = mlstage_input_string(ctx, "model", NULL);
    f->version = mlstage_input_string(ctx, "version", NULL);
    f->reason = mlstage_input_string(ctx, "reason", NULL);
    f->approval_url = mlstage_input_string(ctx, "approval_url", NULL);
    f->max_metrics = (size_t)mlstage_input_int(ctx, "max_metrics", 25);
    if ((rc = decision_of(ctx, &f->decision)) != 0 ||
        (rc = metrics_read(
             ctx, mlstage_input_pending(ctx, "metrics") ? NULL : mlstage_input(ctx, "metrics"),
             &n->metrics)) != 0 ||
        (rc = mention_of(ctx, &f->mention_id, &n->mention_name)) != 0 ||
        (rc = git_facts(ctx, f, n)) != 0 || (rc = run_facts(ctx, f, n)) != 0)
        return rc;
    f->metrics = &n->metrics;
    f->mention_name = n->mention_name;

    const char *title = mlstage_input_string(ctx, "title", NULL);
    int made;
    if (title)
        made = asprintf(&n->title, "%s", title);
    else if (f->model)
        made = asprintf(&n->title, "Model %s%s%s", f->model, f->version ? " version " : "",
                        f->version ? f->version : "");
    else
        made = asprintf(&n->title, "mlstage: %s", mlstage_task_name(ctx));
    if (made < 0) {
        n->title = NULL;
        return MLSTAGE_ENOMEM;
    }
    if (asprintf(&n->footer, "mlstage %s \xC2\xB7 task %s \xC2\xB7 run %s \xC2\xB7 backend %s",
                 MLSTAGE_VERSION, mlstage_task_name(ctx), mlstage_run_id(ctx),
                 mlstage_backend(ctx)) < 0) {
        n->footer = NULL;
        return MLSTAGE_ENOMEM;
    }
    f->title = n->title;
    f->footer = n->footer;
    return 0;
}

/* Says what had to go for the card to fit the webhook's limit. */
static void report_cuts(struct mlstage_ctx *ctx, const struct card_facts *f,
                        const struct card_cuts *cuts)
{
    size_t rows = f->metrics->count;
    if (cuts->level > 0 || cuts->reason_cut || cuts->text_cut)
        mlstage_warn(ctx,
                     "the card was shortened to stay under the %d KB webhook limit: %zu of %zu "
                     "metric rows shown%s%s",
                     CARD_LIMIT_BYTES / 1024, cuts->metrics_shown, rows,
                     cuts->reason_cut ? ", reason shortened" : "",
                     cuts->text_cut ? ", long texts shortened" : "");
    else if (cuts->metrics_shown < rows)
        mlstage_info(ctx, "%zu of %zu metric rows shown (max_metrics)", cuts->metrics_shown, rows);
    if (cuts->approval_dropped)
        mlstage_warn(ctx, "approval_url is longer than a card can carry: the approval button "
                          "was left out");
}

/* `body` as one line of at most ANSWER_EXCERPT_MAX bytes, for an error message. */
static void excerpt(char *out, size_t cap, const char *body, size_t len)
{
    size_t n = len < ANSWER_EXCERPT_MAX ? len : ANSWER_EXCERPT_MAX;
    if (n >= cap)
        n = cap - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    out[n] = '\0';
    if (len > n)
        strcat(out, "...");
}

/*
 * A card that did not get through: a failed stage (exit 1, or 5 when the
 * service kept failing), or with fail_on_error false a warning and exit 0.
 */
static int undelivered(struct mlstage_ctx *ctx, int code, const char *what)
{
    mlstage_output_set(ctx, "status", "failed");
    if (mlstage_input_bool(ctx, "fail_on_error", 1))
        return mlstage_error_set(ctx, code, "%s", what);
    mlstage_warn(ctx, "%s (fail_on_error is false: the stage goes on)", what);
    return 0;
}

static int deliver(struct mlstage_ctx *ctx, const char *url, const char *text, size_t len)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct mlstage_http_request req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = text,
        .body_len = len,
        .max_attempts = (int)mlstage_input_int(ctx, "max_attempts", 5),
        .timeout_s = ATTEMPT_TIMEOUT_S,
        .deadline_s = mlstage_input_double(ctx, "deadline_s", 120),
    };
    struct mlstage_http_response *resp = NULL;
    char what[1024], answer[ANSWER_EXCERPT_MAX + 8];
    int rc = mlstage_http_send(ctx, &req, &resp);
    if (resp)
        mlstage_output_setf(ctx, "http_status", "%ld", resp->status);
    if (rc == MLSTAGE_EREMOTE) {
        /* The client's message names the attempts and the last answer; the URL in it is masked. */
        snprintf(what, sizeof(what), "the Teams webhook did not take the card: %s",
                 mlstage_error_message(ctx));
        rc = undelivered(ctx, MLSTAGE_EREMOTE, what);
    } else if (rc != 0) {
        /* Refused before sending (a URL the client does not accept): not a delivery failure. */
    } else if (resp->status >= 200 && resp->status <= 299) {
        mlstage_output_set(ctx, "status", "sent");
        mlstage_info(ctx, "Teams card delivered: HTTP %ld after %d attempt%s (%zu bytes)",
                     resp->status, resp->attempts, resp->attempts == 1 ? "" : "s", len);
        snprintf(what, sizeof(what),
                 "**Teams notification** sent: HTTP %ld, a card of %zu bytes (card.json in the "
                 "run's outputs)\n",
                 resp->status, len);
        mlstage_summary_append(ctx, what);
    } else {
        excerpt(answer, sizeof(answer), resp->body, resp->body_len);
        snprintf(what, sizeof(what), "the Teams webhook refused the card: HTTP %ld%s%s%s",
                 resp->status,
                 resp->status >= 300 && resp->status <= 399 ? " (redirect not followed)" : "",
                 answer[0] ? ": " : "", answer);
        rc = undelivered(ctx, MLSTAGE_EFAIL, what);
    }
    mlstage_http_response_free(resp);
    return rc;
}

static int notify_run(struct mlstage_ctx *ctx)
{
    struct notify n = {0};
    struct card_facts facts;
    struct card_cuts cuts;
    json_object *envelope = NULL;
    char *text = NULL, path[4096];
    size_t len = 0;
    int rc;

    const char *url = mlstage_input_string(ctx, "webhook_url", "");
    /* Masked from here on even when the manifest did not pass it through `secrets:`. */
    mlstage_secret_register(ctx, url);
    /* A dry run without the secret (a pull request's) still shows the card. */
    if (mlstage_input_pending(ctx, "webhook_url"))
        mlstage_plan(ctx, "webhook_url is not known in this dry run (its secret is not set)");
    else if ((rc = webhook_url_check(ctx, url)) != 0)
        goto done;
    if ((rc = facts_gather(ctx, &facts, &n)) != 0)
        goto done;
    if ((rc = card_fit(&facts, &envelope, &text, &len, &cuts)) != 0) {
        if (rc == MLSTAGE_EFAIL)
            rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                   "the card does not fit the %d KB webhook limit even shortened",
                                   CARD_LIMIT_BYTES / 1024);
        goto done;
    }
    report_cuts(ctx, &facts, &cuts);
    mlstage_output_setf(ctx, "card_bytes", "%zu", len);

    /* The card as sent, beside the run, stamped like any artefact. */
    if (snprintf(path, sizeof(path), "%s/card.json", mlstage_outputs_dir(ctx)) >=
        (int)sizeof(path)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EIO, "the run folder path is too long");
        goto done;
    }
    if ((rc = mlstage_json_write(ctx, path, card_content(envelope))) != 0 ||
        (rc = mlstage_artifact_add(ctx, path, NULL)) != 0)
        goto done;

    if (mlstage_dry_run(ctx)) {
        mlstage_plan(ctx,
                     "POST this card (%zu bytes) to the Teams webhook (its URL is a secret and "
                     "is not shown):\n%s",
                     len,
                     json_object_to_json_string_ext(envelope, JSON_C_TO_STRING_PRETTY |
                                                                  JSON_C_TO_STRING_SPACED |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
        mlstage_output_set(ctx, "status", "planned");
        mlstage_output_set(ctx, "http_status", "0");
        goto done;
    }
    rc = deliver(ctx, url, text, len);
done:
    json_object_put(envelope);
    free(text);
    notify_free(&n);
    return rc;
}

static const struct mlstage_plugin notify_teams_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "notify-teams",
    .version = PLUGIN_VERSION,
    .summary = "post an Adaptive Card (model, decision, metrics, commit, run, approval link) to a "
               "Microsoft Teams Workflows webhook",
    .input_schema = input_schema,
    .run = notify_run,
};

MLSTAGE_PLUGIN_DEFINE(notify_teams_plugin)
