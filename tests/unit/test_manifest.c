/* test_manifest.c — the manifest loader: YAML typing, marks, task checks and the hostile corpus. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expand.h"
#include "manifest.h"
#include "testutil.h"

#define GOOD    MLSTAGE_TEST_DATA_DIR "/manifests/good/"
#define HOSTILE MLSTAGE_TEST_DATA_DIR "/manifests/hostile/"

static struct mls_err err;

static struct manifest_doc *load_ok(const char *yaml)
{
    struct manifest_doc *doc = NULL;
    err_clear(&err);
    int rc = manifest_load_buf("t.yml", yaml, strlen(yaml), &doc, &err);
    if (rc != 0)
        fprintf(stderr, "\nunexpected error: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    return doc;
}

/* Asserts that `yaml` (len bytes) fails with "t.yml:<where> ..." containing `what`. */
static void expect_fail_len(const char *yaml, size_t len, const char *where, const char *what)
{
    struct manifest_doc *doc = NULL;
    err_clear(&err);
    int rc = manifest_load_buf("t.yml", yaml, len, &doc, &err);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(doc);
    char *prefix = tu_fmt("t.yml:%s ", where);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "\nexpected a message starting \"%s\", got:\n%s\n", prefix, err.msg);
    CU_ASSERT_EQUAL(strncmp(err.msg, prefix, strlen(prefix)), 0);
    TU_ASSERT_CONTAINS(err.msg, what);
    free(prefix);
    manifest_doc_free(doc);
}

static void expect_fail(const char *yaml, const char *where, const char *what)
{
    expect_fail_len(yaml, strlen(yaml), where, what);
}

static json_object *at(const struct manifest_doc *doc, const char *pointer)
{
    json_object *o = NULL;
    if (json_pointer_get(doc->root, pointer, &o) != 0)
        return NULL;
    return o;
}

static void assert_mark(const struct manifest_doc *doc, const char *pointer, int line, int col,
                        int plain)
{
    int l = -1, c = -1, p = -1;
    CU_ASSERT_EQUAL(manifest_mark(doc, pointer, &l, &c, &p), 0);
    if (l != line || c != col || p != plain)
        fprintf(stderr, "\nmark of %s: got %d:%d plain=%d, expected %d:%d plain=%d\n", pointer, l,
                c, p, line, col, plain);
    CU_ASSERT_EQUAL(l, line);
    CU_ASSERT_EQUAL(c, col);
    CU_ASSERT_EQUAL(p, plain);
}

/* ---- YAML to json-c ---- */

static void test_loads_design_example(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "train.yml", &doc, &err), 0);
    CU_ASSERT_STRING_EQUAL(doc->path, GOOD "train.yml");
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/task")), "train");
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/timeout")), "30m");
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/inputs/command")),
                           "python3 examples/diabetes/train.py --alpha ${var.alpha:-0.5} --out "
                           "${run.outputs_dir}");
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/secrets/0")), "TEAMS_WEBHOOK_URL");
    assert_mark(doc, "/task", 2, 7, 1);
    assert_mark(doc, "/task#key", 2, 1, 1);
    assert_mark(doc, "/inputs", 7, 3, 0);
    assert_mark(doc, "/inputs/command", 7, 12, 1);
    assert_mark(doc, "/secrets/0", 11, 5, 1);
    manifest_doc_free(doc);
}

static void test_types_plain_scalars_by_core_schema(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "types.yml", &doc, &err), 0);
    json_object *nulls = at(doc, "/inputs/nulls");
    CU_ASSERT_EQUAL(json_object_array_length(nulls), 4);
    for (size_t i = 0; i < json_object_array_length(nulls); i++)
        CU_ASSERT_PTR_NULL(json_object_array_get_idx(nulls, i));
    CU_ASSERT_TRUE(json_object_object_get_ex(at(doc, "/inputs"), "empty", NULL));
    CU_ASSERT_PTR_NULL(at(doc, "/inputs/empty"));

    json_object *bools = at(doc, "/inputs/bools");
    for (size_t i = 0; i < 6; i++) {
        json_object *b = json_object_array_get_idx(bools, i);
        CU_ASSERT_TRUE(json_object_is_type(b, json_type_boolean));
        CU_ASSERT_EQUAL(json_object_get_boolean(b), i < 3);
    }
    const int64_t ints[] = {0, 42, -17, 8, 12, 31, 15};
    json_object *iv = at(doc, "/inputs/ints");
    for (size_t i = 0; i < 7; i++) {
        json_object *n = json_object_array_get_idx(iv, i);
        CU_ASSERT_TRUE(json_object_is_type(n, json_type_int));
        CU_ASSERT_EQUAL(json_object_get_int64(n), ints[i]);
    }
    const double floats[] = {0.5, -1.25, 1000.0, 0.5, 1.0, 6.02e23};
    json_object *fv = at(doc, "/inputs/floats");
    for (size_t i = 0; i < 6; i++) {
        json_object *n = json_object_array_get_idx(fv, i);
        CU_ASSERT_TRUE(json_object_is_type(n, json_type_double));
        CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(n), floats[i], 1e-9 * fabs(floats[i]));
    }
    CU_ASSERT_TRUE(isinf(json_object_get_double(json_object_array_get_idx(fv, 6))));
    CU_ASSERT_TRUE(json_object_get_double(json_object_array_get_idx(fv, 7)) < 0);
    CU_ASSERT_TRUE(isinf(json_object_get_double(json_object_array_get_idx(fv, 7))));
    CU_ASSERT_TRUE(json_object_get_double(json_object_array_get_idx(fv, 8)) > 0);
    CU_ASSERT_TRUE(isnan(json_object_get_double(json_object_array_get_idx(fv, 9))));

    /* YAML 1.1 booleans, underscores, binary and sexagesimal are plain text in 1.2. */
    const char *texts[] = {"yes",   "no", "on",  "off", "y",   "1_000",
                           "0b101", "0x", "0o8", "1e",  "1:30"};
    json_object *sv = at(doc, "/inputs/yaml11_strings");
    for (size_t i = 0; i < 11; i++) {
        json_object *s = json_object_array_get_idx(sv, i);
        CU_ASSERT_TRUE(json_object_is_type(s, json_type_string));
        CU_ASSERT_STRING_EQUAL(json_object_get_string(s), texts[i]);
    }
    manifest_doc_free(doc);
}

static void test_keeps_quoted_and_block_scalars_as_strings(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "types.yml", &doc, &err), 0);
    json_object *q = at(doc, "/inputs/quoted");
    const char *want[] = {"42", "true", "null", ""};
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(json_object_is_type(json_object_array_get_idx(q, i), json_type_string));
        CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_array_get_idx(q, i)), want[i]);
    }
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/inputs/literal")),
                           "line one\nline two\n");
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/inputs/folded")), "folded text");
    assert_mark(doc, "/inputs/quoted/0", 10, 12, 0);
    assert_mark(doc, "/inputs/literal", 11, 12, 0);
    manifest_doc_free(doc);
}

static void test_honours_core_tags(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "types.yml", &doc, &err), 0);
    json_object *t = at(doc, "/inputs/tagged");
    CU_ASSERT_TRUE(json_object_is_type(json_object_array_get_idx(t, 0), json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_array_get_idx(t, 0)), "42");
    CU_ASSERT_TRUE(json_object_is_type(json_object_array_get_idx(t, 1), json_type_double));
    CU_ASSERT_EQUAL(json_object_get_int64(json_object_array_get_idx(t, 2)), 7);
    CU_ASSERT_TRUE(json_object_is_type(json_object_array_get_idx(t, 3), json_type_boolean));
    CU_ASSERT_FALSE(json_object_get_boolean(json_object_array_get_idx(t, 3)));
    CU_ASSERT_PTR_NULL(json_object_array_get_idx(t, 4));
    manifest_doc_free(doc);
    expect_fail("a: !!int twelve\n", "1:4:", "'twelve' is not a valid !!int");
    expect_fail("a: !custom x\n", "1:4:", "unsupported tag !custom");
    expect_fail("a: !!set {x}\n", "1:4:", "unsupported tag !!set on a mapping");
}

static void test_marks_fall_back_to_the_nearest_ancestor(void)
{
    struct manifest_doc *doc = load_ok("task: t\ninputs:\n  a: {b: 1}\n");
    int line = 0, col = 0;
    CU_ASSERT_EQUAL(manifest_mark(doc, "/inputs/a/zzz/0", &line, &col, NULL), 0);
    CU_ASSERT_EQUAL(line, 3);
    CU_ASSERT_EQUAL(col, 6);
    CU_ASSERT_EQUAL(manifest_mark(doc, "/inputs/nothing#key", &line, &col, NULL), 0);
    CU_ASSERT_EQUAL(line, 3);
    CU_ASSERT_EQUAL(col, 3);
    assert_mark(doc, "", 1, 1, 0);
    assert_mark(doc, "/inputs/a/b", 3, 10, 1);
    CU_ASSERT_EQUAL(manifest_mark(NULL, "/x", &line, &col, NULL), -1);
    manifest_doc_free(doc);
}

static void test_escapes_keys_in_json_pointers(void)
{
    struct manifest_doc *doc = load_ok("\"a/b\": 1\n\"c~d\": 2\n");
    assert_mark(doc, "/a~1b", 1, 8, 1);
    assert_mark(doc, "/c~0d#key", 2, 1, 0);
    CU_ASSERT_EQUAL(json_object_get_int(at(doc, "/a~1b")), 1);
    manifest_doc_free(doc);
}

static void test_error_at_formats_the_location(void)
{
    struct manifest_doc *doc = load_ok("task: t\ninputs:\n  alpha: abc\n");
    int rc = manifest_error_at(doc, "/inputs/alpha", &err, "expected %s", "a number");
    CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(err.code, MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "t.yml:3:10: expected a number");
    manifest_doc_free(doc);
}

static void test_rejects_a_duplicate_key_at_the_second_key(void)
{
    expect_fail("task: a\nplugin: p\ntask: b\n",
                "3:1:", "duplicate key 'task' (first defined at line 1)");
    expect_fail("x: {a: 1, b: 2, a: 3}\n", "1:17:", "first defined at line 1");
}

static void test_rejects_merge_keys(void)
{
    expect_fail("base: &b {x: 1}\nother:\n  <<: *b\n", "3:3:", "merge keys (<<) are not supported");
    /* A quoted "<<" is an ordinary key. */
    struct manifest_doc *doc = load_ok("\"<<\": 1\n");
    CU_ASSERT_EQUAL(json_object_get_int(at(doc, "/<<")), 1);
    manifest_doc_free(doc);
}

static void test_rejects_complex_keys(void)
{
    expect_fail("? [a, b]\n: c\n", "1:3:", "a list used as a mapping key");
    expect_fail("{a: 1}: c\n", "1:1:", "a mapping used as a mapping key");
    expect_fail("a: &k x\n*k : y\n", "2:1:", "an alias (*k) used as a mapping key");
}

static void test_rejects_a_second_document(void)
{
    expect_fail("a: 1\n---\nb: 2\n", "2:1:", "a second YAML document");
    expect_fail("a: 1\n...\n---\nb: 2\n", "3:1:", "a second YAML document");
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL(manifest_load(GOOD "explicit-document.yml", &doc, &err), 0);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/task")), "explicit");
    manifest_doc_free(doc);
}

static void test_expands_aliases_into_independent_copies(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "anchors.yml", &doc, &err), 0);
    json_object *first = at(doc, "/inputs/first");
    json_object *second = at(doc, "/inputs/second");
    CU_ASSERT_TRUE(json_object_equal(first, at(doc, "/inputs/defaults")));
    CU_ASSERT_TRUE(json_object_equal(first, second));
    CU_ASSERT_PTR_NOT_EQUAL(first, second);
    /* Changing one copy must not change the other. */
    json_object_object_add(first, "alpha", json_object_new_int(9));
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(at(doc, "/inputs/second/alpha")), 0.5, 1e-12);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/inputs/names/1")), "shared");
    /* An alias has the mark of where it is used; below it, the alias's mark. */
    assert_mark(doc, "/inputs/second", 8, 11, 0);
    assert_mark(doc, "/inputs/second/tags/1", 8, 11, 0);
    manifest_doc_free(doc);
}

static void test_rejects_undefined_and_recursive_aliases(void)
{
    expect_fail("a: *nope\n", "1:4:", "alias *nope refers to no anchor");
    expect_fail("a: &x\n  b: [*x]\n", "2:7:", "refers to a node that contains it");
}

static void test_stops_an_alias_bomb_quickly(void)
{
    struct manifest_doc *doc = NULL;
    double start = now_mono();
    int rc = manifest_load(HOSTILE "alias-bomb.yml", &doc, &err);
    double took = now_mono() - start;
    CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(doc);
    TU_ASSERT_CONTAINS(err.msg, "alias-bomb.yml:9:31: alias *d would expand the document past "
                                "100000 values");
    /* A hang guard only: it takes about a tenth of a second. */
    CU_ASSERT_TRUE(took < 5.0);
}

static void test_counts_aliased_nodes_against_the_limit(void)
{
    /* 11 values per *a; 1000 of them stay far below the limit and load. */
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "a: &a [1,2,3,4,5,6,7,8,9,10]\nb: [");
    for (int i = 0; i < 1000; i++)
        buf_puts(&b, i ? ",*a" : "*a");
    buf_puts(&b, "]\n");
    struct manifest_doc *doc = load_ok(b.data);
    CU_ASSERT_EQUAL(json_object_array_length(at(doc, "/b")), 1000);
    manifest_doc_free(doc);
    buf_free(&b);
}

static char *nested(int levels)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "x: ");
    for (int i = 1; i < levels; i++)
        buf_putc(&b, '[');
    for (int i = 1; i < levels; i++)
        buf_putc(&b, ']');
    buf_putc(&b, '\n');
    return buf_steal(&b);
}

static void test_rejects_nesting_deeper_than_64(void)
{
    char *ok = nested(64), *deep = nested(65);
    struct manifest_doc *doc = load_ok(ok);
    manifest_doc_free(doc);
    /* The root mapping is level 1; the 64th '[' opens level 65. */
    expect_fail(deep, "1:67:", "nesting deeper than 64 levels");
    free(ok);
    free(deep);
    /* Aliases cannot be used to climb past the limit either. */
    char *anchored = nested(40);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "a: &a %sb: %s", anchored + 3,
               "[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]\n");
    expect_fail(b.data, "2:30:", "alias *a would nest deeper than 64 levels");
    buf_free(&b);
    free(anchored);
}

static void test_rejects_a_value_over_1_mib(void)
{
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/big-scalar.yml", dir);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "task: t\nplugin: p\ninputs:\n  big: ");
    size_t head = b.len;
    for (size_t i = 0; i < MANIFEST_MAX_SCALAR + 1; i++)
        buf_putc(&b, 'x');
    buf_putc(&b, '\n');
    CU_ASSERT_EQUAL_FATAL(tu_write(path, b.data), 0);
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL(manifest_load(path, &doc, &err), MLSTAGE_EINPUT);
    char *want =
        tu_fmt("%s:4:8: a value of 1048577 bytes; a single value is limited to 1 MiB", path);
    TU_ASSERT_CONTAINS(err.msg, want);
    /* Exactly 1 MiB is allowed. */
    b.data[head + MANIFEST_MAX_SCALAR] = '\n';
    b.data[head + MANIFEST_MAX_SCALAR + 1] = '\0';
    CU_ASSERT_EQUAL_FATAL(tu_write(path, b.data), 0);
    CU_ASSERT_EQUAL(manifest_load(path, &doc, &err), 0);
    CU_ASSERT_EQUAL(json_object_get_string_len(at(doc, "/inputs/big")), (int)MANIFEST_MAX_SCALAR);
    manifest_doc_free(doc);
    buf_free(&b);
    free(want);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void test_rejects_a_file_over_4_mib_without_reading_it(void)
{
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/big-file.yml", dir);
    /* Exactly 4 MiB loads: a short document and a long comment. */
    char *data = malloc(MANIFEST_MAX_FILE + 2);
    memset(data, ' ', MANIFEST_MAX_FILE + 1);
    memcpy(data, "task: t\n#", 9);
    data[MANIFEST_MAX_FILE - 1] = '\n';
    data[MANIFEST_MAX_FILE] = '\0';
    CU_ASSERT_EQUAL_FATAL(tu_write(path, data), 0);
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL(manifest_load(path, &doc, &err), 0);
    manifest_doc_free(doc);
    doc = NULL;
    /* One byte more is refused. */
    data[MANIFEST_MAX_FILE] = '\n';
    data[MANIFEST_MAX_FILE + 1] = '\0';
    CU_ASSERT_EQUAL_FATAL(tu_write(path, data), 0);
    CU_ASSERT_EQUAL(manifest_load(path, &doc, &err), MLSTAGE_EINPUT);
    char *want = tu_fmt("%s:1:1: the file is 4194305 bytes; a manifest is limited to 4 MiB", path);
    TU_ASSERT_CONTAINS(err.msg, want);
    free(want);
    /* A sparse 1 GiB file is refused by its size, before a byte is read. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(ftruncate(fd, 1L << 30), 0);
    close(fd);
    double start = now_mono();
    CU_ASSERT_EQUAL(manifest_load(path, &doc, &err), MLSTAGE_EINPUT);
    CU_ASSERT_TRUE(now_mono() - start < 1.0);
    TU_ASSERT_CONTAINS(err.msg, ":1:1: the file is 1073741824 bytes");
    /* The same limit applies to buffers. */
    expect_fail_len(data, MANIFEST_MAX_FILE + 1, "1:1:", "limited to 4 MiB");
    free(data);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void test_refuses_streams_and_fifos_without_waiting(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL(manifest_load("/dev/zero", &doc, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "/dev/zero: is not a regular file");
    /* Opening a FIFO nobody writes to would block forever. */
    char *dir = tu_tmpdir();
    char *fifo = tu_fmt("%s/task.yml", dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    double start = now_mono();
    CU_ASSERT_EQUAL(manifest_load(fifo, &doc, &err), MLSTAGE_EINPUT);
    CU_ASSERT_TRUE(now_mono() - start < 5.0);
    TU_ASSERT_CONTAINS(err.msg, "is not a regular file");
    free(fifo);
    tu_rm_rf(dir);
    free(dir);
}

static void test_rejects_invalid_utf8_at_its_character_column(void)
{
    /* Columns count characters, as libyaml's do: "é" is one column. */
    expect_fail("a: \xc3\xa9\xc3\xa9\xc3\xa9\xff\n", "1:7:", "invalid UTF-8 (byte 0xff)");
    expect_fail("a: 1\nb: \xed\xa0\x80\n", "2:4:", "invalid UTF-8 (byte 0xed)"); /* surrogate */
    expect_fail("a: \xc0\xaf\n", "1:4:", "invalid UTF-8 (byte 0xc0)");           /* overlong */
    expect_fail("a: \xe2\x82\n", "1:4:", "invalid UTF-8");                       /* truncated */
}

static void test_rejects_nul_bytes_and_nul_escapes(void)
{
    expect_fail_len("a: 1\nb: x\0y\n", 12, "2:5:", "a NUL byte");
    expect_fail("a: 1\nb: \"x\\0y\"\n", "2:4:", "a NUL character");
    expect_fail("a: 1\nb: \"x\\x00y\"\n", "2:4:", "a NUL character");
}

static void test_rejects_utf16_and_accepts_a_utf8_bom(void)
{
    expect_fail_len("\xff\xfe"
                    "a\0:\0",
                    6, "1:1:", "UTF-16");
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_load(GOOD "bom.yml", &doc, &err), 0);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/inputs/x")), "caf\xc3\xa9");
    assert_mark(doc, "/task#key", 1, 1, 1);
    assert_mark(doc, "/task", 1, 7, 1);
    manifest_doc_free(doc);
    /* Positions after a BOM are not shifted by it. */
    expect_fail("\xef\xbb\xbf"
                "a: \x01\n",
                "1:4:", "control characters are not allowed");
}

static void test_reports_tabs_in_indentation_at_the_tab(void)
{
    expect_fail("a:\n\tb: 1\n", "2:1:", "a tab character in indentation; YAML indents with spaces");
    expect_fail("a:\n  b: 1\n  \tc: 2\n", "3:3:", "a tab character in indentation");
    /* Tabs after the indentation are ordinary separators or text. */
    struct manifest_doc *doc = load_ok("a:\t1\nb: \"x\ty\"\n");
    CU_ASSERT_EQUAL(json_object_get_int(at(doc, "/a")), 1);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(at(doc, "/b")), "x\ty");
    manifest_doc_free(doc);
}

static void test_turns_libyaml_errors_into_file_line_col(void)
{
    expect_fail("a: \"abc\nb: 1\n", "3:1:",
                "found unexpected end of stream while scanning a quoted scalar (which started at "
                "line 1, column 4); close the quote");
    expect_fail("a: [1, 2\nb: 1\n", "2:2:",
                "did not find expected ',' or ']' while parsing a flow sequence (which started "
                "at line 1, column 4)");
    expect_fail("a: b: c\n", "1:5:", "mapping values are not allowed in this context; quote");
    expect_fail("a: 1\n b: 2\n", "2:3:", "mapping values are not allowed");
    expect_fail("a: @x\n", "1:4:", "found character that cannot start any token");
    expect_fail("a: 1\n- b\n", "2:1:", "did not find expected key");
    expect_fail("a: [x, ${var.n}]\n", "1:9:",
                "did not find expected ',' or ']' while parsing a flow sequence (which started at "
                "line 1, column 4); a ${...} reference inside [...] or {...} must be quoted");
}

static void test_rejects_empty_and_non_mapping_documents(void)
{
    expect_fail("", "1:1:", "the file is empty; expected a mapping");
    expect_fail("# comment\n\n", "1:1:", "the file is empty");
    expect_fail("---\n", "2:1:", "the document is empty; expected a mapping");
    expect_fail("- a\n- b\n", "1:1:", "the document is a list; expected a mapping");
    expect_fail("\n\n  42\n", "3:3:", "the document is a number");
}

static void test_rejects_integers_out_of_range(void)
{
    expect_fail("n: 9223372036854775808\n", "1:4:", "integer 9223372036854775808 is out of range");
    expect_fail("n: 0xFFFFFFFFFFFFFFFFFF\n", "1:4:", "is out of range");
    struct manifest_doc *doc = load_ok("n: 9223372036854775807\nm: -9223372036854775807\n");
    CU_ASSERT_EQUAL(json_object_get_int64(at(doc, "/n")), INT64_MAX);
    CU_ASSERT_EQUAL(json_object_get_int64(at(doc, "/m")), -INT64_MAX);
    manifest_doc_free(doc);
}

static void test_reports_unreadable_files_by_path(void)
{
    struct manifest_doc *doc = NULL;
    CU_ASSERT_EQUAL(manifest_load("/nonexistent/x.yml", &doc, &err), MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(
        err.msg, "/nonexistent/x.yml: cannot open the manifest: No such file or directory");
    CU_ASSERT_EQUAL(manifest_load(MLSTAGE_TEST_DATA_DIR, &doc, &err), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(err.msg, "is a directory");
    CU_ASSERT_PTR_NULL(doc);
}

/* ---- task manifests ---- */

static void test_parses_a_task_manifest(void)
{
    struct task_manifest *t = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_task_load(GOOD "train.yml", &t, &err), 0);
    CU_ASSERT_STRING_EQUAL(t->task, "train");
    CU_ASSERT_STRING_EQUAL(t->plugin, "train");
    CU_ASSERT_STRING_EQUAL(t->backend, "local");
    CU_ASSERT_STRING_EQUAL(t->pointer, "");
    CU_ASSERT_TRUE(t->owns_doc);
    CU_ASSERT_DOUBLE_EQUAL(t->timeout_s, 1800.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(t->kill_grace_s, 0.0, 1e-9);
    CU_ASSERT_PTR_NULL(t->description);
    CU_ASSERT_EQUAL(json_object_object_length(t->inputs), 3);
    CU_ASSERT_EQUAL(json_object_array_length(t->secrets), 1);
    CU_ASSERT_PTR_EQUAL(t->inputs, at(t->doc, "/inputs"));
    manifest_task_free(t);
    manifest_task_free(NULL);
    manifest_task_release(NULL);
}

static void test_task_defaults_when_optional_keys_are_absent_or_null(void)
{
    struct task_manifest *t = NULL;
    CU_ASSERT_EQUAL_FATAL(manifest_task_load(GOOD "minimal.yml", &t, &err), 0);
    CU_ASSERT_STRING_EQUAL(t->backend, "local");
    CU_ASSERT_TRUE(json_object_is_type(t->inputs, json_type_object));
    CU_ASSERT_EQUAL(json_object_object_length(t->inputs), 0);
    CU_ASSERT_TRUE(json_object_is_type(t->secrets, json_type_array));
    CU_ASSERT_EQUAL(json_object_array_length(t->secrets), 0);
    CU_ASSERT_DOUBLE_EQUAL(t->timeout_s, 0.0, 1e-9);
    manifest_task_free(t);

    struct manifest_doc *doc =
        load_ok("task: t\nplugin: p\ninputs:\nsecrets:\nbackend:\ntimeout:\ndescription:\n");
    struct task_manifest task;
    CU_ASSERT_EQUAL_FATAL(manifest_task_parse(doc, "", NULL, &task, &err), 0);
    CU_ASSERT_EQUAL(json_object_object_length(task.inputs), 0);
    CU_ASSERT_EQUAL(json_object_array_length(task.secrets), 0);
    CU_ASSERT_STRING_EQUAL(task.backend, "local");
    CU_ASSERT_PTR_NULL(task.description);
    CU_ASSERT_FALSE(task.owns_doc);
    manifest_task_release(&task);
    manifest_doc_free(doc);
}

static int task_fails(const char *yaml, const char *where, const char *what)
{
    struct manifest_doc *doc = load_ok(yaml);
    struct task_manifest task;
    err_clear(&err);
    int rc = manifest_task_parse(doc, "", NULL, &task, &err);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(task.task);
    CU_ASSERT_PTR_NULL(task.pointer);
    char *prefix = tu_fmt("t.yml:%s ", where);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "\nexpected a message starting \"%s\", got:\n%s\n", prefix, err.msg);
    CU_ASSERT_EQUAL(strncmp(err.msg, prefix, strlen(prefix)), 0);
    TU_ASSERT_CONTAINS(err.msg, what);
    free(prefix);
    manifest_doc_free(doc);
    return rc;
}

static void test_task_parses_durations(void)
{
    const struct {
        const char *yaml;
        double timeout_s, kill_grace_s;
    } cases[] = {
        {"timeout: 90", 90, 0},      {"timeout: 1.5", 1.5, 0},      {"timeout: '90'", 90, 0},
        {"timeout: 1h30m", 5400, 0}, {"timeout: 500ms", 0.5, 0},    {"timeout: 2h", 7200, 0},
        {"kill_grace: 10s", 0, 10},  {"kill_grace: 0.25", 0, 0.25},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *yaml = tu_fmt("task: t\nplugin: p\n%s\n", cases[i].yaml);
        struct manifest_doc *doc = load_ok(yaml);
        struct task_manifest task;
        CU_ASSERT_EQUAL_FATAL(manifest_task_parse(doc, "", NULL, &task, &err), 0);
        CU_ASSERT_DOUBLE_EQUAL(task.timeout_s, cases[i].timeout_s, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(task.kill_grace_s, cases[i].kill_grace_s, 1e-9);
        manifest_task_release(&task);
        manifest_doc_free(doc);
        free(yaml);
    }
    task_fails("task: t\nplugin: p\ntimeout: 0\n",
               "3:10:", "timeout: expected a positive duration");
    task_fails("task: t\nplugin: p\ntimeout: -5\n", "3:10:", "got a number '-5'");
    task_fails("task: t\nplugin: p\ntimeout: 30 minutes\n", "3:10:", "got a string '30 minutes'");
    task_fails("task: t\nplugin: p\ntimeout: .inf\n", "3:10:", "timeout: expected a positive");
    task_fails("task: t\nplugin: p\nkill_grace: [1]\n",
               "3:13:", "kill_grace: expected a positive duration");
}

static void test_task_rejects_unknown_keys_with_a_suggestion(void)
{
    task_fails("task: t\nplugin: p\ntimout: 5m\n", "3:1:",
               "unknown key 'timout'; did you mean 'timeout'? allowed keys: task, plugin, "
               "backend, timeout, kill_grace, description, inputs, secrets");
    task_fails("task: t\nplugin: p\nInputs: {}\n", "3:1:", "did you mean 'inputs'?");
    task_fails("task: t\nplugin: p\nsecret: [A]\n", "3:1:", "did you mean 'secrets'?");
    /* Nothing close: no guess, just the list. */
    task_fails("task: t\nplugin: p\nworkers: 4\n",
               "3:1:", "unknown key 'workers'; allowed keys: task, plugin,");
}

static void test_task_requires_task_and_plugin(void)
{
    task_fails("plugin: p\ninputs: {}\n", "1:1:", "missing required key 'task'");
    task_fails("task: t\ninputs: {}\n", "1:1:", "missing required key 'plugin'");
    task_fails("task:\nplugin: p\n", "1:6:", "task: expected the task's name");
    task_fails("task: t\nplugin: 3\n",
               "2:9:", "plugin: expected a plugin name (e.g. plugin: train), got a number");
    task_fails("task: ''\nplugin: p\n", "1:7:", "got an empty string");
}

static void test_task_checks_names_and_types(void)
{
    task_fails("task: t\nplugin: Train\n", "2:9:", "plugin: 'Train' is not a valid plugin name");
    task_fails("task: t\nplugin: -x\n", "2:9:", "[a-z0-9][a-z0-9-]*");
    task_fails("task: my.task\nplugin: p\n", "1:7:", "task: 'my.task' is not a valid name");
    task_fails("task: t\nplugin: p\nbackend: aws\n", "3:10:", "expected local or azureml");
    task_fails("task: t\nplugin: p\ninputs: [a]\n", "3:9:", "inputs: expected a mapping");
    task_fails("task: t\nplugin: p\nsecrets: A\n", "3:10:", "secrets: expected a list");
    task_fails("task: t\nplugin: p\nsecrets: [A, 1B]\n",
               "3:14:", "secrets[1]: '1B' is not a secret name");
    task_fails("task: t\nplugin: p\nsecrets: [A, {x: 1}]\n", "3:14:", "secrets[1]");
    task_fails("task: t\nplugin: p\ndescription: [a]\n",
               "3:14:", "description: expected text, got a list");

    struct manifest_doc *doc = load_ok("task: t-1_x\nplugin: notify-teams\nbackend: azureml\n"
                                       "description: Trains\nsecrets: [_A, b9]\n");
    struct task_manifest task;
    CU_ASSERT_EQUAL_FATAL(manifest_task_parse(doc, "", NULL, &task, &err), 0);
    CU_ASSERT_STRING_EQUAL(task.backend, "azureml");
    CU_ASSERT_STRING_EQUAL(task.description, "Trains");
    manifest_task_release(&task);
    manifest_doc_free(doc);
}

static void test_task_parses_a_stage_inside_a_pipeline(void)
{
    struct manifest_doc *doc = load_ok("stages:\n  - task: train\n    plugin: train\n"
                                       "  - task: evaluate\n    plugin: evaluate\n"
                                       "    when: ${stages.train.outputs.ok} == true\n"
                                       "    whn: x\n");
    const char *const extra[] = {"when", NULL};
    struct task_manifest task;
    CU_ASSERT_EQUAL_FATAL(manifest_task_parse(doc, "/stages/0", extra, &task, &err), 0);
    CU_ASSERT_STRING_EQUAL(task.task, "train");
    CU_ASSERT_STRING_EQUAL(task.pointer, "/stages/0");
    manifest_task_release(&task);
    CU_ASSERT_EQUAL(manifest_task_parse(doc, "/stages/1", extra, &task, &err), MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "t.yml:7:5: unknown key 'whn'; did you mean 'when'? allowed "
                                    "keys: task, plugin, backend, timeout, kill_grace, "
                                    "description, inputs, secrets, when");
    CU_ASSERT_EQUAL(manifest_task_parse(doc, "/stages/9", extra, &task, &err), MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "t.yml:2:3: expected a task: a mapping with task:, plugin: and "
                                    "inputs:, got nothing");
    manifest_doc_free(doc);
}

/* ---- the hostile corpus ---- */

static const struct {
    const char *file;
    const char *where; /* "line:col" */
    const char *what;
} hostile[] = {
    {"alias-bomb.yml", "9:31", "an alias bomb"},
    {"bad-backend.yml", "3:10", "expected local or azureml"},
    {"bad-plugin-name.yml", "2:9", "not a valid plugin name"},
    {"bad-secret-name.yml", "5:5", "'teams-webhook' is not a secret name"},
    {"binary-garbage.yml", "1:1", "invalid UTF-8 (byte 0x89)"},
    {"colon-in-value.yml", "4:18", "mapping values are not allowed"},
    {"comments-only.yml", "1:1", "the file is empty"},
    {"complex-key.yml", "4:5", "a list used as a mapping key"},
    {"control-char.yml", "4:11", "control characters are not allowed (U+0007)"},
    {"deep-65.yml", "4:71", "nesting deeper than 64 levels"},
    {"duplicate-key.yml", "5:3", "duplicate key 'alpha' (first defined at line 4)"},
    {"empty.yml", "1:1", "the file is empty"},
    {"flow-complex-key.yml", "3:10", "a list used as a mapping key"},
    {"integer-out-of-range.yml", "4:9", "out of range"},
    {"invalid-utf8.yml", "2:11", "invalid UTF-8 (byte 0xe9)"},
    {"merge-key.yml", "6:5", "merge keys (<<) are not supported"},
    {"missing-plugin.yml", "1:1", "missing required key 'plugin'"},
    {"multiple-documents.yml", "3:1", "a second YAML document"},
    {"nul-byte.yml", "2:10", "a NUL byte"},
    {"nul-escape.yml", "4:6", "a NUL character"},
    {"null-task.yml", "1:6", "task: expected the task's name"},
    {"recursive-alias.yml", "4:9", "alias *loop refers to a node that contains it"},
    {"tabs-after-spaces.yml", "5:3", "a tab character in indentation"},
    {"tabs.yml", "4:1", "a tab character in indentation"},
    {"top-level-list.yml", "1:1", "the document is a list"},
    {"top-level-scalar.yml", "1:1", "the document is a string"},
    {"unclosed-bracket.yml", "4:7",
     "while parsing a flow sequence (which started at line 3, column 10)"},
    {"unclosed-quote.yml", "3:1", "(which started at line 1, column 7); close the quote"},
    {"unclosed-reference.yml", "4:8", "unclosed ${"},
    {"undeclared-secret.yml", "4:12", "secret TEAMS_WEBHOOK_URL is not declared"},
    {"undefined-alias.yml", "3:9", "alias *missing refers to no anchor"},
    {"unknown-key.yml", "3:1", "did you mean 'timeout'?"},
    {"unknown-reference.yml", "4:36", "unknown namespace 'foo'"},
    {"unset-variable.yml", "4:19", "variable alpha is not set"},
    {"unsupported-tag.yml", "4:9", "unsupported tag !!binary"},
    {"utf16.yml", "1:1", "UTF-16"},
    {"wrong-type-inputs.yml", "3:9", "inputs: expected a mapping"},
    {"wrong-type-secrets.yml", "3:10", "secrets: expected a list"},
    {"wrong-type-timeout.yml", "3:10", "timeout: expected a positive duration"},
};

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

/* Loads a file as a task and expands its inputs with nothing set; returns the code. */
static int load_hostile(const char *path)
{
    struct task_manifest *t = NULL;
    json_object *expanded = NULL;
    err_clear(&err);
    int rc = manifest_task_load(path, &t, &err);
    if (rc == 0) {
        struct expand_env env = {.getenv_fn = no_env};
        rc = expand_tree(&env, t->doc, "/inputs", t->inputs, &expanded, &err);
    }
    json_object_put(expanded);
    manifest_task_free(t);
    return rc;
}

static void test_hostile_files_fail_at_their_exact_position(void)
{
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        char *path = tu_fmt(HOSTILE "%s", hostile[i].file);
        char *want = tu_fmt("%s:%s: ", path, hostile[i].where);
        int rc = load_hostile(path);
        CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
        if (strncmp(err.msg, want, strlen(want)) != 0)
            fprintf(stderr, "\n%s: expected \"%s...\", got:\n%s\n", hostile[i].file, want, err.msg);
        CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);
        TU_ASSERT_CONTAINS(err.msg, hostile[i].what);
        free(want);
        free(path);
    }
}

static void test_every_hostile_file_is_an_input_error_with_a_position(void)
{
    DIR *d = opendir(HOSTILE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    size_t seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        seen++;
        char *path = tu_fmt(HOSTILE "%s", e->d_name);
        int rc = load_hostile(path);
        if (rc != MLSTAGE_EINPUT)
            fprintf(stderr, "\n%s: rc %d (%s)\n", e->d_name, rc, err.msg);
        CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
        /* "path:<line>:<col>: message" with a 1-based position. */
        int line = 0, col = 0, used = 0;
        size_t plen = strlen(path);
        int matched = strncmp(err.msg, path, plen) == 0 &&
                      sscanf(err.msg + plen, ":%d:%d: %n", &line, &col, &used) == 2 && used > 0;
        if (!matched || line < 1 || col < 1)
            fprintf(stderr, "\n%s: no position in: %s\n", e->d_name, err.msg);
        CU_ASSERT_TRUE(matched && line >= 1 && col >= 1);
        /* Every fixture has its exact position pinned in the table above. */
        int listed = 0;
        for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
            listed |= strcmp(hostile[i].file, e->d_name) == 0;
        if (!listed)
            fprintf(stderr, "\n%s is not in the hostile table\n", e->d_name);
        CU_ASSERT_TRUE(listed);
        free(path);
    }
    closedir(d);
    CU_ASSERT_EQUAL(seen, sizeof(hostile) / sizeof(hostile[0]));
}

static void test_good_files_load_as_tasks(void)
{
    const char *files[] = {"train.yml",   "minimal.yml", "types.yml",
                           "anchors.yml", "bom.yml",     "explicit-document.yml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *path = tu_fmt(GOOD "%s", files[i]);
        struct task_manifest *t = NULL;
        int rc = manifest_task_load(path, &t, &err);
        if (rc)
            fprintf(stderr, "\n%s\n", err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        manifest_task_free(t);
        free(path);
    }
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"loads the design's train manifest with values and 1-based marks",
         test_loads_design_example},
        {"types plain scalars by the YAML 1.2 core schema",
         test_types_plain_scalars_by_core_schema},
        {"keeps quoted and block scalars as strings",
         test_keeps_quoted_and_block_scalars_as_strings},
        {"honours !!str/!!int/!!float/!!bool/!!null and rejects other tags",
         test_honours_core_tags},
        {"finds the mark of the nearest ancestor", test_marks_fall_back_to_the_nearest_ancestor},
        {"escapes / and ~ of keys in mark pointers", test_escapes_keys_in_json_pointers},
        {"formats manifest_error_at as path:line:col: message", test_error_at_formats_the_location},
        {"rejects a duplicate key at the second key's line and column, naming the first's line",
         test_rejects_a_duplicate_key_at_the_second_key},
        {"rejects merge keys (<<) with a clear message", test_rejects_merge_keys},
        {"rejects complex (non-string) keys", test_rejects_complex_keys},
        {"rejects a second document and accepts one explicit document",
         test_rejects_a_second_document},
        {"expands aliases into independent copies", test_expands_aliases_into_independent_copies},
        {"rejects undefined and recursive aliases", test_rejects_undefined_and_recursive_aliases},
        {"stops a billion-laughs alias bomb in well under a second",
         test_stops_an_alias_bomb_quickly},
        {"counts aliased values but lets reasonable reuse through",
         test_counts_aliased_nodes_against_the_limit},
        {"rejects nesting deeper than 64 levels, by aliases too",
         test_rejects_nesting_deeper_than_64},
        {"rejects a value over 1 MiB and accepts exactly 1 MiB", test_rejects_a_value_over_1_mib},
        {"rejects a file over 4 MiB by its size before reading it",
         test_rejects_a_file_over_4_mib_without_reading_it},
        {"refuses streams and FIFOs without waiting for them",
         test_refuses_streams_and_fifos_without_waiting},
        {"rejects invalid UTF-8 at its line and character column",
         test_rejects_invalid_utf8_at_its_character_column},
        {"rejects NUL bytes and \\0 escapes", test_rejects_nul_bytes_and_nul_escapes},
        {"rejects UTF-16 and skips a UTF-8 byte order mark",
         test_rejects_utf16_and_accepts_a_utf8_bom},
        {"reports tabs in indentation at the tab", test_reports_tabs_in_indentation_at_the_tab},
        {"turns libyaml scanner and parser errors into file:line:col: problem context",
         test_turns_libyaml_errors_into_file_line_col},
        {"rejects an empty file and a top level that is not a mapping",
         test_rejects_empty_and_non_mapping_documents},
        {"rejects integers outside 64 bits", test_rejects_integers_out_of_range},
        {"reports unreadable files by path", test_reports_unreadable_files_by_path},
        {"parses a task manifest's fields", test_parses_a_task_manifest},
        {"gives defaults for absent or null optional task keys",
         test_task_defaults_when_optional_keys_are_absent_or_null},
        {"parses timeouts as durations or positive seconds", test_task_parses_durations},
        {"rejects an unknown task key naming the allowed keys and the closest one",
         test_task_rejects_unknown_keys_with_a_suggestion},
        {"requires task and plugin", test_task_requires_task_and_plugin},
        {"checks task, plugin and secret names and the types of task keys",
         test_task_checks_names_and_types},
        {"parses a stage inside a pipeline with the pipeline's extra keys",
         test_task_parses_a_stage_inside_a_pipeline},
        {"fails every hostile file at its exact line and column",
         test_hostile_files_fail_at_their_exact_position},
        {"makes every file of the hostile directory an input error with file:line:col",
         test_every_hostile_file_is_an_input_error_with_a_position},
        {"loads every good file as a task", test_good_files_load_as_tasks},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "manifest", tests);
}
