/* evaluate_report.c — the evaluation for people: markdown table, mermaid chart, SVG bar charts. */
#include "evaluate.h"
#include "markdown.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SVG geometry: one panel per metric, candidate and champion bars side by side. */
#define SVG_MAX_PANELS 8
#define SVG_MARGIN     16
#define SVG_PANEL_W    150
#define SVG_PLOT_TOP   96
#define SVG_PLOT_H     160
#define SVG_HEIGHT     320
#define SVG_NAME_MAX   18 /* characters of a metric name shown under its panel */

#define COLOR_CANDIDATE "#3182ce"
#define COLOR_CHAMPION  "#a0aec0"
#define COLOR_GOOD      "#2f855a"
#define COLOR_BAD       "#c53030"
#define COLOR_TEXT      "#1a202c"

/* ---- text ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p, or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p)
{
    size_t n;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0 && p[0] >= 0xC2)
        n = 2;
    else if ((p[0] & 0xF0) == 0xE0)
        n = 3;
    else if ((p[0] & 0xF8) == 0xF0 && p[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/*
 * Text as XML character data or attribute value: markup escaped, control
 * characters and invalid UTF-8 (which would make the file ill-formed)
 * replaced. At most `max_chars` characters, then "…" (0: no limit).
 */
static void xml_text(FILE *f, const char *text, size_t max_chars)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t chars = 0;
    while (*p) {
        if (max_chars && chars == max_chars) {
            fputs("\xE2\x80\xA6", f);
            return;
        }
        size_t n = utf8_seq(p);
        chars++;
        if (n == 0) {
            fputc('?', f);
            p++;
            continue;
        }
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if (*p < 0x20)
                fputc(' ', f);
            else
                fwrite(p, 1, n, f);
        }
        p += n;
    }
}

/* A string inside a mermaid double-quoted label: no quotes, no newlines. */
static void mermaid_text(FILE *f, const char *text)
{
    for (const char *p = text; *p; p++)
        fputc(*p == '"' ? '\'' : (*p == '\n' || *p == '\r') ? ' ' : *p, f);
}

static void threshold_text(const struct evaluate_row *r, char *out, size_t size)
{
    if (r->has_min && r->has_max)
        snprintf(out, size, "\xE2\x89\xA5 %.5g and \xE2\x89\xA4 %.5g", r->min, r->max);
    else if (r->has_min)
        snprintf(out, size, "\xE2\x89\xA5 %.5g", r->min);
    else if (r->has_max)
        snprintf(out, size, "\xE2\x89\xA4 %.5g", r->max);
    else
        snprintf(out, size, "\xE2\x80\x94");
}

/* What one row says: better/worse for the deciding metric, pass/fail for thresholds. */
static void verdict_text(const struct evaluate_rules *rules, const struct evaluate_result *res,
                         const struct evaluate_row *r, char *out, size_t size, int *good)
{
    *good = -1; /* neutral */
    out[0] = '\0';
    if (r->primary) {
        if (!res->champion_version) {
            snprintf(out, size, "no champion yet");
        } else if (!r->has_champion) {
            snprintf(out, size, "champion lacks it");
            *good = 0;
        } else {
            double gain = rules->maximize ? r->delta : -r->delta;
            int enough = res->enough;
            snprintf(out, size, "%s",
                     gain > 0    ? (enough ? "better" : "better, not by enough")
                     : gain == 0 ? "no change"
                                 : "worse");
            *good = enough;
        }
    }
    if (r->has_min || r->has_max) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", len ? ", " : "",
                 r->within ? "threshold met" : "threshold missed");
        if (!r->within)
            *good = 0;
        else if (*good == -1)
            *good = 1;
    }
    if (!out[0])
        snprintf(out, size, "\xE2\x80\x94");
}

/* "production v3" or "production (none)". */
static void champion_label(const struct evaluate_rules *rules, const struct evaluate_result *res,
                           char *out, size_t size)
{
    if (res->champion_version)
        snprintf(out, size, "%s v%d", rules->alias, res->champion_version);
    else
        snprintf(out, size, "%s (none)", rules->alias);
}

/* ---- markdown ------------------------------------------------------------- */

static void markdown_table(FILE *f, const struct evaluate_rules *rules,
                           const struct evaluate_result *res)
{
    char champ[96];
    champion_label(rules, res, champ, sizeof(champ));
    fprintf(f, "| metric | candidate | %s | delta | delta %% | threshold | verdict |\n", champ);
    fputs("|---|---:|---:|---:|---:|---|---|\n", f);
    for (size_t i = 0; i < res->n_rows; i++) {
        const struct evaluate_row *r = &res->rows[i];
        char thr[96], verdict[96];
        int good;
        threshold_text(r, thr, sizeof(thr));
        verdict_text(rules, res, r, verdict, sizeof(verdict), &good);
        fputs("| ", f);
        if (r->primary)
            fputs("**", f);
        md_table_cell(f, r->name);
        if (r->primary)
            fprintf(f, "** (%s)", rules->maximize ? "higher is better" : "lower is better");
        fprintf(f, " | %.6g | ", r->candidate);
        if (r->has_champion)
            fprintf(f, "%.6g | %+.6g | ", r->champion, r->delta);
        else
            fputs("\xE2\x80\x94 | \xE2\x80\x94 | ", f);
        if (r->has_relative)
            fprintf(f, "%+.3g %% | ", r->relative * 100);
        else
            fputs("\xE2\x80\x94 | ", f);
        fprintf(f, "%s | %s |\n", thr, verdict);
    }
}

/* The deciding metric as a mermaid bar chart: candidate next to the champion. */
static void mermaid_chart(FILE *f, const struct evaluate_rules *rules,
                          const struct evaluate_result *res)
{
    const struct evaluate_row *p = &res->rows[0];
    char champ[96];
    champion_label(rules, res, champ, sizeof(champ));
    fputs("```mermaid\nxychart-beta\n    title \"", f);
    mermaid_text(f, p->name);
    if (res->champion_version)
        fprintf(f, " (%s): candidate vs %s\"\n",
                rules->maximize ? "higher is better" : "lower is better", champ);
    else
        fprintf(f, " (%s): candidate; no %s version yet\"\n",
                rules->maximize ? "higher is better" : "lower is better", rules->alias);
    fputs("    x-axis [\"candidate\"", f);
    if (p->has_champion)
        fprintf(f, ", \"%s\"", champ);
    fputs("]\n    y-axis \"", f);
    mermaid_text(f, p->name);
    fprintf(f, "\"\n    bar [%.6g", p->candidate);
    if (p->has_champion)
        fprintf(f, ", %.6g", p->champion);
    fputs("]\n```\n", f);
}

/* ---- SVG ------------------------------------------------------------------ */

struct scale {
    double lo, hi;
};

static double scale_y(const struct scale *s, double v)
{
    return SVG_PLOT_TOP + (s->hi - v) / (s->hi - s->lo) * SVG_PLOT_H;
}

static struct scale panel_scale(const struct evaluate_row *r)
{
    double lo = 0, hi = 0;
    double values[4] = {r->candidate, r->has_champion ? r->champion : 0, r->has_min ? r->min : 0,
                        r->has_max ? r->max : 0};
    for (int i = 0; i < 4; i++) {
        lo = fmin(lo, values[i]);
        hi = fmax(hi, values[i]);
    }
    double span = hi - lo > 0 ? hi - lo : 1;
    struct scale s = {lo < 0 ? lo - 0.12 * span : lo, hi + 0.12 * span};
    return s;
}

static void svg_bar(FILE *f, const struct scale *s, double x, double value, const char *color)
{
    double top = scale_y(s, fmax(value, 0)), bottom = scale_y(s, fmin(value, 0));
    double height = bottom - top < 1 ? 1 : bottom - top;
    fprintf(f, "  <rect x=\"%.1f\" y=\"%.1f\" width=\"44\" height=\"%.1f\" fill=\"%s\"/>\n", x, top,
            height, color);
    double label_y = value >= 0 ? top - 4 : bottom + 12;
    fprintf(f, "  <text class=\"v\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n",
            x + 22, label_y, value);
}

static void svg_threshold(FILE *f, const struct scale *s, double x0, double value, const char *what)
{
    double y = scale_y(s, value);
    fprintf(f,
            "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_BAD
            "\" stroke-dasharray=\"4 3\"/>\n",
            x0 + 10, y, x0 + SVG_PANEL_W - 20, y);
    fprintf(f,
            "  <text class=\"v\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"" COLOR_BAD
            "\">%s %.4g</text>\n",
            x0 + SVG_PANEL_W - 20, y - 3, what, value);
}

static void svg_panel(FILE *f, const struct evaluate_rules *rules,
                      const struct evaluate_result *res, const struct evaluate_row *r, double x0)
{
    struct scale s = panel_scale(r);
    char verdict[96];
    int good;
    verdict_text(rules, res, r, verdict, sizeof(verdict), &good);
    fprintf(f, " <g>\n");
    double zero = scale_y(&s, 0);
    fprintf(f,
            "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_TEXT "\"/>\n",
            x0 + 10, zero, x0 + SVG_PANEL_W - 20, zero);
    svg_bar(f, &s, x0 + 18, r->candidate, COLOR_CANDIDATE);
    if (r->has_champion)
        svg_bar(f, &s, x0 + 68, r->champion, COLOR_CHAMPION);
    if (r->has_min)
        svg_threshold(f, &s, x0, r->min, "min");
    if (r->has_max)
        svg_threshold(f, &s, x0, r->max, "max");
    double cx = x0 + 65; /* under the middle of the two bars */
    fprintf(f, "  <text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\"%s>", cx,
            SVG_PLOT_TOP + SVG_PLOT_H + 24, r->primary ? " font-weight=\"bold\"" : "");
    xml_text(f, r->name, SVG_NAME_MAX);
    fputs("</text>\n", f);
    fprintf(f, "  <text class=\"v\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">", cx,
            SVG_PLOT_TOP + SVG_PLOT_H + 42,
            good == 1   ? COLOR_GOOD
            : good == 0 ? COLOR_BAD
                        : COLOR_TEXT);
    xml_text(f, verdict, 0);
    fputs("</text>\n </g>\n", f);
}

static void svg_document(FILE *f, const struct evaluate_rules *rules,
                         const struct evaluate_result *res)
{
    size_t n = res->n_rows < SVG_MAX_PANELS ? res->n_rows : SVG_MAX_PANELS;
    int width = 2 * SVG_MARGIN + (int)n * SVG_PANEL_W;
    if (width < 420)
        width = 420;
    char champ[96];
    champion_label(rules, res, champ, sizeof(champ));
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"title desc\">\n",
            width, SVG_HEIGHT, width, SVG_HEIGHT);
    fputs(" <title id=\"title\">", f);
    xml_text(f, rules->model, 0);
    fprintf(f, ": candidate vs %s: %s</title>\n", champ, res->promote ? "promote" : "keep");
    fputs(" <desc id=\"desc\">", f);
    xml_text(f, res->reason, 0);
    fputs("</desc>\n", f);
    fputs(" <style>text{font-family:Helvetica,Arial,sans-serif;font-size:12px;fill:" COLOR_TEXT
          "}.v{font-size:11px}.h{font-size:16px;font-weight:bold}</style>\n",
          f);
    fputs(" <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", f);
    fprintf(f, " <text class=\"h\" x=\"%d\" y=\"28\">", SVG_MARGIN);
    xml_text(f, rules->model, 0);
    fprintf(f, ": candidate vs ");
    xml_text(f, champ, 0);
    fprintf(f, " \xE2\x80\x94 <tspan fill=\"%s\">%s</tspan></text>\n",
            res->promote ? COLOR_GOOD : COLOR_BAD, res->promote ? "promote" : "keep the champion");
    fprintf(f, " <text x=\"%d\" y=\"50\">deciding metric: ", SVG_MARGIN);
    xml_text(f, rules->metric, 0);
    fprintf(f, " (%s)</text>\n", rules->maximize ? "higher is better" : "lower is better");
    fprintf(f,
            " <rect x=\"%d\" y=\"62\" width=\"12\" height=\"12\" fill=\"" COLOR_CANDIDATE "\"/>\n"
            " <text x=\"%d\" y=\"72\">candidate</text>\n"
            " <rect x=\"%d\" y=\"62\" width=\"12\" height=\"12\" fill=\"" COLOR_CHAMPION "\"/>\n"
            " <text x=\"%d\" y=\"72\">",
            SVG_MARGIN, SVG_MARGIN + 18, SVG_MARGIN + 100, SVG_MARGIN + 118);
    xml_text(f, champ, 0);
    fputs("</text>\n", f);
    for (size_t i = 0; i < n; i++)
        svg_panel(f, rules, res, &res->rows[i], SVG_MARGIN + (double)i * SVG_PANEL_W);
    fputs("</svg>\n", f);
}

/* ---- the report ----------------------------------------------------------- */

static int write_svg(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                     const struct evaluate_result *res, char **path_out)
{
    char *svg = NULL, *path = NULL;
    size_t len = 0;
    int rc = 0;
    FILE *f = open_memstream(&svg, &len);
    if (!f)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    svg_document(f, rules, res);
    if (fclose(f) != 0 || asprintf(&path, "%s/evaluation.svg", mlstage_run_dir(ctx)) < 0) {
        path = NULL;
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = mlstage_file_write(ctx, path, svg, len)) != 0 ||
        (rc = mlstage_artifact_add(ctx, path, NULL)) != 0)
        goto done;
    if (path_out) {
        *path_out = path;
        path = NULL;
    }
done:
    free(svg);
    free(path);
    return rc;
}

int evaluate_report(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                    const struct evaluate_result *res, char **svg_path)
{
    char *md = NULL, *path = NULL;
    size_t size = 0;
    if (svg_path)
        *svg_path = NULL;
    int rc = write_svg(ctx, rules, res, &path);
    if (rc)
        return rc;
    FILE *f = open_memstream(&md, &size);
    if (!f) {
        free(path);
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    fprintf(f, "### Evaluation of %s (%s): %s\n\n", rules->model, mlstage_task_name(ctx),
            res->promote ? "promote" : "keep the champion");
    fprintf(f, "**promote = %s** \xE2\x80\x94 ", res->promote ? "true" : "false");
    md_table_cell(f, res->reason);
    fputs("\n\n", f);
    markdown_table(f, rules, res);
    fputs("\n", f);
    mermaid_chart(f, rules, res);
    fprintf(f, "\nChart of every metric: `%s`\n", path);
    if (fclose(f) != 0) {
        free(md);
        free(path);
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    rc = mlstage_summary_append(ctx, md);
    free(md);
    if (svg_path && rc == 0)
        *svg_path = path;
    else
        free(path);
    return rc;
}
