/* card.c — lays out the notify-teams Adaptive Card and shrinks it until the webhook takes it. */
#include "card.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/mlstage.h>

#define ENVELOPE_CONTENT_TYPE "application/vnd.microsoft.card.adaptive"
#define CARD_SCHEMA_URL       "http://adaptivecards.io/schemas/adaptive-card.json"
#define JSON_WIRE             (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define ELLIPSIS              "\xE2\x80\xA6" /* U+2026, 3 bytes */

/*
 * How much of each kind of text a card keeps, from generous to terse.
 * card_fit takes the first level whose card fits; the last one bounds
 * every text, so its card is small whatever the inputs were.
 */
struct limits {
    size_t text;    /* bytes of one short text: title, names, a fact, a cell */
    size_t reason;  /* bytes of the reason */
    size_t metrics; /* metric rows */
    size_t url;     /* a longer URL is left out rather than cut (a cut URL is a wrong link) */
};

static const struct limits levels[] = {
    {1024, 4000, SIZE_MAX, 8192}, {512, 1500, 20, 4096}, {256, 600, 10, 2048},
    {128, 240, 5, 2048},          {64, 120, 0, 1024},
};

#define N_LEVELS (sizeof(levels) / sizeof(levels[0]))

/* One build: the limits in force and what they cut. */
struct build {
    const struct limits *lim;
    struct card_cuts cuts;
    int oom;
};

/* `s` cut to at most `max` bytes on a character boundary, with an ellipsis when cut. */
static char *clip(struct build *b, const char *s, size_t max, int *cut)
{
    size_t len = strlen(s);
    char *out;
    if (len <= max) {
        out = strdup(s);
    } else {
        size_t n = max > 3 ? max - 3 : 0;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        out = malloc(n + sizeof(ELLIPSIS));
        if (out) {
            memcpy(out, s, n);
            memcpy(out + n, ELLIPSIS, sizeof(ELLIPSIS));
        }
        *cut = 1;
    }
    if (!out)
        b->oom = 1;
    return out;
}

/* Adds key: a new string (an empty one on OOM, which is reported through b->oom). */
static void add_string(struct build *b, json_object *obj, const char *key, const char *value)
{
    json_object *s = json_object_new_string(value ? value : "");
    if (!s)
        b->oom = 1;
    json_object_object_add(obj, key, s);
}

/* A wrapping TextBlock holding `text` as given (already cut by the caller). */
static json_object *text_block(struct build *b, const char *text)
{
    json_object *tb = json_object_new_object();
    add_string(b, tb, "type", "TextBlock");
    add_string(b, tb, "text", text);
    json_object_object_add(tb, "wrap", json_object_new_boolean(1));
    return tb;
}

static void add_fact(struct build *b, json_object *facts, const char *title, const char *value)
{
    json_object *f = json_object_new_object();
    add_string(b, f, "title", title);
    add_string(b, f, "value", value);
    json_object_array_add(facts, f);
}

/* A fact whose value is user text, cut to the text limit. */
static void add_text_fact(struct build *b, json_object *facts, const char *title, const char *value)
{
    char *t = clip(b, value, b->lim->text, &b->cuts.text_cut);
    add_fact(b, facts, title, t);
    free(t);
}

/* "[label](url)" — markdown, which Teams renders in fact values and text blocks. */
static char *md_link(struct build *b, const char *label, const char *url)
{
    char *out = NULL;
    if (asprintf(&out, "[%s](%s)", label, url) < 0) {
        b->oom = 1;
        return NULL;
    }
    return out;
}

static int url_fits(const struct build *b, const char *url)
{
    return url && *url && strlen(url) <= b->lim->url;
}

static void add_decision(struct build *b, json_object *body, const struct card_facts *f)
{
    static const struct {
        const char *text, *color;
    } looks[] = {
        [CARD_DECISION_NONE] = {"Decision: none recorded", "Default"},
        [CARD_DECISION_PROMOTE] = {"\xE2\x9C\x85 Decision: promote", "Good"},
        [CARD_DECISION_REJECT] = {"\xE2\x9D\x8C Decision: rejected", "Attention"},
    };
    json_object *tb = text_block(b, looks[f->decision].text);
    add_string(b, tb, "color", looks[f->decision].color);
    add_string(b, tb, "weight", "Bolder");
    add_string(b, tb, "size", "Medium");
    add_string(b, tb, "spacing", "Small");
    json_object_array_add(body, tb);
    if (f->reason && *f->reason) {
        char *r = clip(b, f->reason, b->lim->reason, &b->cuts.reason_cut);
        tb = text_block(b, r ? r : "");
        free(r);
        add_string(b, tb, "spacing", "Small");
        json_object_array_add(body, tb);
    }
}

static void add_commit_fact(struct build *b, json_object *facts, const struct card_facts *f)
{
    char short_id[8];
    if (!f->commit) {
        add_fact(b, facts, "Commit", "none (not a git repository)");
        return;
    }
    snprintf(short_id, sizeof(short_id), "%.7s", f->commit);
    char *id = url_fits(b, f->commit_url) ? md_link(b, short_id, f->commit_url) : strdup(short_id);
    char *subject =
        clip(b, f->commit_subject ? f->commit_subject : "", b->lim->text, &b->cuts.text_cut);
    char *value = NULL;
    if (id && subject &&
        asprintf(&value, "%s%s%s%s", id, *subject ? " " : "", subject,
                 f->dirty ? " (with uncommitted changes)" : "") < 0)
        value = NULL;
    if (!value)
        b->oom = 1;
    add_fact(b, facts, "Commit", value ? value : short_id);
    free(value);
    free(subject);
    free(id);
}

static void add_facts(struct build *b, json_object *body, const struct card_facts *f)
{
    json_object *set = json_object_new_object(), *facts = json_object_new_array();
    add_string(b, set, "type", "FactSet");
    if (f->model)
        add_text_fact(b, facts, "Model", f->model);
    if (f->version)
        add_text_fact(b, facts, "Version", f->version);
    add_commit_fact(b, facts, f);
    if (f->commit) {
        add_text_fact(b, facts, "Branch", f->branch ? f->branch : "(detached HEAD)");
        if (f->author)
            add_text_fact(b, facts, "Author", f->author);
    }
    if (f->run_label) {
        char *label = clip(b, f->run_label, b->lim->text, &b->cuts.text_cut);
        char *value = label && url_fits(b, f->run_url) && strncmp(f->run_url, "file:", 5) != 0
                          ? md_link(b, label, f->run_url)
                          : NULL;
        add_fact(b, facts, "Run", value ? value : label);
        free(value);
        free(label);
    }
    json_object_object_add(set, "facts", facts);
    json_object_array_add(body, set);
}

/* One row of the metrics table: a ColumnSet whose columns line up with the header's. */
static json_object *table_row(struct build *b, const char *const cells[4], const char *delta_color,
                              int header)
{
    static const int weights[4] = {3, 2, 2, 3};
    json_object *set = json_object_new_object(), *columns = json_object_new_array();
    add_string(b, set, "type", "ColumnSet");
    add_string(b, set, "spacing", header ? "Medium" : "Small");
    for (int i = 0; i < 4; i++) {
        json_object *col = json_object_new_object(), *items = json_object_new_array();
        add_string(b, col, "type", "Column");
        json_object_object_add(col, "width", json_object_new_int(weights[i]));
        char *text =
            clip(b, cells[i] ? cells[i] : "\xE2\x80\x94", b->lim->text / 2, &b->cuts.text_cut);
        json_object *tb = text_block(b, text ? text : "");
        free(text);
        if (header)
            add_string(b, tb, "weight", "Bolder");
        if (i > 0)
            add_string(b, tb, "horizontalAlignment", "Right");
        if (i == 3 && delta_color)
            add_string(b, tb, "color", delta_color);
        json_object_array_add(items, tb);
        json_object_object_add(col, "items", items);
        json_object_array_add(columns, col);
    }
    json_object_object_add(set, "columns", columns);
    return set;
}

static void add_metrics(struct build *b, json_object *body, const struct card_facts *f)
{
    const struct metric_table *t = f->metrics;
    if (!t || t->count == 0)
        return;
    size_t shown = t->count;
    if (shown > f->max_metrics)
        shown = f->max_metrics;
    if (shown > b->lim->metrics)
        shown = b->lim->metrics;
    b->cuts.metrics_shown = shown;

    json_object *heading = text_block(b, "Metrics: candidate against champion");
    add_string(b, heading, "weight", "Bolder");
    add_string(b, heading, "spacing", "Medium");
    json_object_object_add(heading, "separator", json_object_new_boolean(1));
    json_object_array_add(body, heading);
    if (shown > 0) {
        static const char *const header[4] = {"Metric", "Candidate", "Champion", "Delta"};
        json_object_array_add(body, table_row(b, header, NULL, 1));
    }
    for (size_t i = 0; i < shown; i++) {
        const struct metric_row *r = &t->rows[i];
        const char *cells[4] = {r->name, r->candidate, r->champion, r->delta};
        const char *color = r->trend == METRIC_TREND_BETTER  ? "Good"
                            : r->trend == METRIC_TREND_WORSE ? "Attention"
                                                             : NULL;
        json_object_array_add(body, table_row(b, cells, color, 0));
    }
    if (shown < t->count) {
        char more[96];
        size_t left = t->count - shown;
        if (shown)
            snprintf(more, sizeof(more), ELLIPSIS " and %zu more metric%s not shown", left,
                     left == 1 ? "" : "s");
        else
            snprintf(more, sizeof(more), "%zu metric%s not shown", left, left == 1 ? "" : "s");
        json_object *tb = text_block(b, more);
        json_object_object_add(tb, "isSubtle", json_object_new_boolean(1));
        add_string(b, tb, "size", "Small");
        json_object_array_add(body, tb);
    }
}

/* "<at>Name</at>" in a text block, and the entity that makes Teams resolve it. */
static void add_mention(struct build *b, json_object *body, json_object *card,
                        const struct card_facts *f)
{
    if (!f->mention_id || !f->mention_name)
        return;
    char *name = clip(b, f->mention_name, b->lim->text, &b->cuts.text_cut);
    char *tag = NULL, *text = NULL;
    if (!name || asprintf(&tag, "<at>%s</at>", name) < 0)
        tag = NULL;
    if (tag && asprintf(&text, "%s, please review.", tag) < 0)
        text = NULL;
    if (!tag || !text) {
        b->oom = 1;
        goto done;
    }
    json_object_array_add(body, text_block(b, text));

    json_object *mentioned = json_object_new_object();
    add_string(b, mentioned, "id", f->mention_id); /* a cut id would mention no one */
    add_string(b, mentioned, "name", name);
    json_object *entity = json_object_new_object();
    add_string(b, entity, "type", "mention");
    add_string(b, entity, "text", tag);
    json_object_object_add(entity, "mentioned", mentioned);
    json_object *entities = json_object_new_array();
    json_object_array_add(entities, entity);
    json_object *msteams = json_object_new_object();
    json_object_object_add(msteams, "entities", entities);
    json_object_object_add(card, "msteams", msteams);
done:
    free(text);
    free(tag);
    free(name);
}

static json_object *open_url(struct build *b, const char *title, const char *url, const char *style)
{
    json_object *a = json_object_new_object();
    add_string(b, a, "type", "Action.OpenUrl");
    add_string(b, a, "title", title);
    add_string(b, a, "url", url);
    if (style)
        add_string(b, a, "style", style);
    return a;
}

static json_object *card_build(struct build *b, const struct card_facts *f)
{
    static const char *const decided[] = {
        [CARD_DECISION_NONE] = "no decision",
        [CARD_DECISION_PROMOTE] = "promote",
        [CARD_DECISION_REJECT] = "rejected",
    };
    json_object *card = json_object_new_object(), *body = json_object_new_array(),
                *actions = json_object_new_array();
    add_string(b, card, "type", "AdaptiveCard");
    add_string(b, card, "$schema", CARD_SCHEMA_URL);
    add_string(b, card, "version", CARD_VERSION);

    char *title = clip(b, f->title ? f->title : "mlstage", b->lim->text, &b->cuts.text_cut);
    json_object *tb = text_block(b, title ? title : "");
    add_string(b, tb, "size", "Large");
    add_string(b, tb, "weight", "Bolder");
    json_object_array_add(body, tb);
    char *fallback = NULL;
    if (title && asprintf(&fallback, "%s: %s", title, decided[f->decision]) < 0)
        fallback = NULL;
    add_string(b, card, "fallbackText", fallback ? fallback : "");
    free(fallback);
    free(title);

    add_decision(b, body, f);
    add_facts(b, body, f);
    add_metrics(b, body, f);
    add_mention(b, body, card, f);
    if (f->footer) {
        char *footer = clip(b, f->footer, b->lim->text, &b->cuts.text_cut);
        tb = text_block(b, footer ? footer : "");
        free(footer);
        add_string(b, tb, "size", "Small");
        json_object_object_add(tb, "isSubtle", json_object_new_boolean(1));
        add_string(b, tb, "spacing", "Medium");
        json_object_array_add(body, tb);
    }

    if (f->approval_url && *f->approval_url) {
        if (url_fits(b, f->approval_url))
            json_object_array_add(actions,
                                  open_url(b, "Review and approve", f->approval_url, "positive"));
        else
            b->cuts.approval_dropped = 1;
    }
    if (url_fits(b, f->run_url))
        json_object_array_add(actions, open_url(b, "Open run", f->run_url, NULL));

    json_object_object_add(card, "body", body);
    json_object_object_add(card, "actions", actions);
    return card;
}

static json_object *envelope_of(struct build *b, json_object *card)
{
    json_object *env = json_object_new_object(), *attachments = json_object_new_array(),
                *att = json_object_new_object();
    add_string(b, env, "type", "message");
    add_string(b, att, "contentType", ENVELOPE_CONTENT_TYPE);
    json_object_object_add(att, "content", card);
    json_object_array_add(attachments, att);
    json_object_object_add(env, "attachments", attachments);
    return env;
}

json_object *card_content(json_object *envelope)
{
    json_object *attachments = NULL, *content = NULL;
    if (!json_object_object_get_ex(envelope, "attachments", &attachments) ||
        json_object_array_length(attachments) < 1 ||
        !json_object_object_get_ex(json_object_array_get_idx(attachments, 0), "content", &content))
        return NULL;
    return content;
}

int card_fit(const struct card_facts *facts, json_object **envelope, char **text, size_t *len,
             struct card_cuts *cuts)
{
    *envelope = NULL;
    *text = NULL;
    *len = 0;
    memset(cuts, 0, sizeof(*cuts));
    for (size_t level = 0; level < N_LEVELS; level++) {
        struct build b = {.lim = &levels[level]};
        b.cuts.level = (int)level;
        json_object *env = envelope_of(&b, card_build(&b, facts));
        size_t n = 0;
        const char *wire = json_object_to_json_string_length(env, JSON_WIRE, &n);
        if (b.oom || !wire) {
            json_object_put(env);
            return MLSTAGE_ENOMEM;
        }
        if (n <= CARD_BUDGET_BYTES) {
            *text = strndup(wire, n);
            if (!*text) {
                json_object_put(env);
                return MLSTAGE_ENOMEM;
            }
            *envelope = env;
            *len = n;
            *cuts = b.cuts;
            return 0;
        }
        json_object_put(env);
    }
    return MLSTAGE_EFAIL;
}
