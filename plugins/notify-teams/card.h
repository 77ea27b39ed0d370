/* card.h — the notify-teams Adaptive Card: its layout, its webhook envelope, and fitting it in 28
 * KB. */
#ifndef NOTIFY_TEAMS_CARD_H
#define NOTIFY_TEAMS_CARD_H

#include <stddef.h>

#include <json-c/json.h>

#include "metrics.h"

/* Teams refuses a webhook message over 28 KB. */
#define CARD_LIMIT_BYTES (28 * 1024)
/* What a card may use: 1 KiB below the limit, so "28 KB" read as 28,000 bytes holds too. */
#define CARD_BUDGET_BYTES (27 * 1024)
/* The Adaptive Card version Teams renders everywhere (desktop, web, mobile). */
#define CARD_VERSION "1.4"

enum card_decision { CARD_DECISION_NONE = 0, CARD_DECISION_PROMOTE, CARD_DECISION_REJECT };

/* What a card says. Every string is borrowed and may be NULL when not known. */
struct card_facts {
    const char *title;
    const char *model;
    const char *version;
    enum card_decision decision;
    const char *reason;
    const struct metric_table *metrics;
    size_t max_metrics;         /* rows shown at most, before any size cut */
    const char *commit;         /* full id; NULL outside a git repository */
    const char *commit_subject; /* first line of its message */
    const char *commit_url;     /* the commit on the forge, when the origin is one */
    int dirty;                  /* uncommitted changes in the work tree */
    const char *branch;
    const char *author;
    const char *run_label; /* "GitHub Actions run 42", or the local run folder */
    const char *run_url;   /* the CI run, or a file:// URL of the run folder */
    const char *approval_url;
    const char *mention_id; /* a UPN or Entra object id; with mention_name */
    const char *mention_name;
    const char *footer;
};

/* What had to go for the card to fit; all zero when nothing did. */
struct card_cuts {
    size_t metrics_shown; /* rows in the card (of facts->metrics->count) */
    int reason_cut;       /* the reason was shortened */
    int text_cut;         /* some other text was shortened */
    int approval_dropped; /* the approval URL was too long to keep */
    int level;            /* 0: as generous as allowed; higher: terser */
};

/*
 * Builds the Workflows webhook message for `facts` — {"type": "message",
 * "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
 * "content": <AdaptiveCard 1.4>}]} — as large as fits CARD_BUDGET_BYTES once
 * serialised: long texts are cut and metric rows left out, step by step,
 * until it does. On success *envelope is a new reference and *text the
 * serialised message exactly as it is to be sent (the caller frees it),
 * *len its size. MLSTAGE_EFAIL when even the tersest form does not fit.
 */
int card_fit(const struct card_facts *facts, json_object **envelope, char **text, size_t *len,
             struct card_cuts *cuts);

/* The card inside an envelope (borrowed), or NULL. */
json_object *card_content(json_object *envelope);

#endif
