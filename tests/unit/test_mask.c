/* test_mask.c — secret masking: derived forms, longest match, overlaps, multi-line, threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mask.h"
#include "testutil.h"

/* Masks a NUL-terminated text; the caller frees. */
static char *M(const char *text)
{
    return mask_apply(text, strlen(text), NULL);
}

#define ASSERT_MASKED(text, expected)                                                              \
    do {                                                                                           \
        char *m_ = M(text);                                                                        \
        if (strcmp(m_, (expected)) != 0)                                                           \
            fprintf(stderr, "\n   text: [%s]\nexpected: [%s]\n     got: [%s]\n", (text),           \
                    (expected), m_);                                                               \
        CU_ASSERT_STRING_EQUAL(m_, (expected));                                                    \
        free(m_);                                                                                  \
    } while (0)

static void test_short_values_ignored(void)
{
    mask_reset();
    CU_ASSERT_EQUAL(mask_add("abc"), 0);
    CU_ASSERT_EQUAL(mask_add(""), 0);
    CU_ASSERT_EQUAL(mask_add(NULL), 0);
    CU_ASSERT_EQUAL(mask_count(), 0);
    ASSERT_MASKED("abc abc", "abc abc");
    CU_ASSERT_EQUAL(mask_add("abcd"), 1);
    ASSERT_MASKED("abc abcd", "abc ***");
    mask_reset();
}

static void test_every_occurrence(void)
{
    mask_reset();
    mask_add("s3cret-token");
    ASSERT_MASKED("x=s3cret-token y=s3cret-token", "x=*** y=***");
    ASSERT_MASKED("s3cret-tokens3cret-token", "******");
    ASSERT_MASKED("s3cret-toke", "s3cret-toke"); /* a prefix is not the secret */
    ASSERT_MASKED("no secrets here", "no secrets here");
    mask_reset();
}

static void test_url_encoded_forms(void)
{
    mask_reset();
    mask_add("p@ss w/rd+1");
    ASSERT_MASKED("password=p%40ss%20w%2Frd%2B1&x=1", "password=***&x=1");
    /* Form bodies (application/x-www-form-urlencoded) write a space as '+'. */
    ASSERT_MASKED("client_secret=p%40ss+w%2Frd%2B1&grant_type=client_credentials",
                  "client_secret=***&grant_type=client_credentials");
    mask_reset();
    mask_add("p\xc3\xa4sswort"); /* UTF-8 is encoded byte by byte */
    ASSERT_MASKED("pw=p%C3%A4sswort", "pw=***");
    mask_reset();
}

/* The secret as json-c writes it in a document, with and without '/' escaped. */
static void assert_json_masked(const char *secret, int flags)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(secret));
    const char *doc = json_object_to_json_string_ext(o, flags);
    char *m = M(doc);
    if (strcmp(m, "{\"key\":\"***\"}") != 0)
        fprintf(stderr, "\n   doc: %s\nmasked: %s\n", doc, m);
    CU_ASSERT_STRING_EQUAL(m, "{\"key\":\"***\"}");
    free(m);
    json_object_put(o);
}

static void test_json_escaped_forms(void)
{
    const char *secret = "a\"b\\c/d\te\x01";
    mask_reset();
    mask_add(secret);
    assert_json_masked(secret, JSON_C_TO_STRING_PLAIN);
    assert_json_masked(secret, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    mask_reset();
}

static void test_json_inside_url(void)
{
    /* A JSON document carried in a query string: URL-encoding of the JSON-escaped form. */
    mask_reset();
    mask_add("to\"ken/42");
    ASSERT_MASKED("q=%7B%22t%22%3A%22to%5C%22ken%2F42%22%7D", "q=%7B%22t%22%3A%22***%22%7D");
    ASSERT_MASKED("q=%7B%22t%22%3A%22to%5C%22ken%5C%2F42%22%7D", "q=%7B%22t%22%3A%22***%22%7D");
    mask_reset();
}

static void test_longest_match_wins(void)
{
    mask_reset();
    mask_add("abcd");
    mask_add("abcd1234");
    ASSERT_MASKED("[abcd1234]", "[***]");
    ASSERT_MASKED("[abcd12]", "[***12]");
    mask_reset();
    /* Same result whichever is added first. */
    mask_add("abcd1234");
    mask_add("abcd");
    ASSERT_MASKED("[abcd1234]", "[***]");
    mask_reset();
}

static void test_overlapping_secrets_leave_nothing(void)
{
    /* The first secret ends inside the second: neither may show a single character. */
    mask_reset();
    mask_add("tokenAAAA");
    mask_add("AAAABBBBBB");
    ASSERT_MASKED("x tokenAAAABBBBBB y", "x *** y");
    mask_reset();
}

static void test_multiline_secret(void)
{
    const char *key = "-----BEGIN KEY-----\nMIIabc123xyz\n-----END KEY-----";
    mask_reset();
    mask_add(key);
    ASSERT_MASKED("key: -----BEGIN KEY-----\nMIIabc123xyz\n-----END KEY-----\n", "key: ***\n");
    /* Streamed output is masked a line at a time: each line of the secret is a secret. */
    ASSERT_MASKED("MIIabc123xyz", "***");
    ASSERT_MASKED("-----END KEY-----", "***");
    /* And its JSON form, as it would appear in a request log. */
    ASSERT_MASKED("{\"k\":\"-----BEGIN KEY-----\\nMIIabc123xyz\\n-----END KEY-----\"}",
                  "{\"k\":\"***\"}");
    mask_reset();
    mask_add("line-one\r\nline-two");
    ASSERT_MASKED("line-two", "***");
    ASSERT_MASKED("line-one", "***");
    mask_reset();
}

static void test_binary_text_and_length(void)
{
    mask_reset();
    mask_add("secret-value");
    const char text[] = "a\0secret-value\0b";
    size_t out_len = 0;
    char *m = mask_apply(text, sizeof(text) - 1, &out_len);
    CU_ASSERT_EQUAL(out_len, 7);
    CU_ASSERT_EQUAL(memcmp(m, "a\0***\0b", 8), 0); /* and NUL-terminated */
    free(m);
    m = mask_apply("", 0, &out_len);
    CU_ASSERT_EQUAL(out_len, 0);
    CU_ASSERT_STRING_EQUAL(m, "");
    free(m);
    /* A secret that would run past the end of the text is not read past it. */
    m = mask_apply("xx secret-val", 13, &out_len);
    CU_ASSERT_EQUAL(out_len, 13);
    free(m);
    mask_reset();
    m = mask_apply("plain", 5, &out_len);
    CU_ASSERT_STRING_EQUAL(m, "plain");
    CU_ASSERT_EQUAL(out_len, 5);
    free(m);
}

static void test_contains(void)
{
    mask_reset();
    CU_ASSERT_FALSE(mask_contains("anything", 8));
    mask_add("p@ss w/rd+1");
    CU_ASSERT_TRUE(mask_contains("x p@ss w/rd+1 y", 15));
    CU_ASSERT_TRUE(mask_contains("x=p%40ss%20w%2Frd%2B1", 21));
    CU_ASSERT_FALSE(mask_contains("p@ss w/rd", 9));
    mask_reset();
}

static void test_duplicates_and_reset(void)
{
    mask_reset();
    mask_add("duplicate-value");
    size_t n = mask_count();
    CU_ASSERT_TRUE(n >= 1);
    CU_ASSERT_EQUAL(mask_add("duplicate-value"), 1);
    CU_ASSERT_EQUAL(mask_count(), n);
    mask_reset();
    CU_ASSERT_EQUAL(mask_count(), 0);
    ASSERT_MASKED("duplicate-value", "duplicate-value");
}

static void *hammer(void *arg)
{
    long id = (long)arg;
    char secret[64], text[128];
    for (int i = 0; i < 200; i++) {
        snprintf(secret, sizeof(secret), "thread-%ld-secret-%d", id, i);
        mask_add(secret);
        snprintf(text, sizeof(text), "<%s>", secret);
        char *m = mask_apply(text, strlen(text), NULL);
        if (strcmp(m, "<***>") != 0)
            return (void *)1;
        free(m);
    }
    return NULL;
}

static void test_threads(void)
{
    mask_reset();
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *failed = NULL;
        pthread_join(t[i], &failed);
        CU_ASSERT_PTR_NULL(failed);
    }
    CU_ASSERT_EQUAL(mask_count(), 800);
    mask_reset();
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"values shorter than 4 bytes are ignored", test_short_values_ignored},
        {"every occurrence is replaced, and only whole secrets", test_every_occurrence},
        {"URL-encoded forms are masked, including form encoding's '+'", test_url_encoded_forms},
        {"JSON-escaped forms are masked as json-c writes them", test_json_escaped_forms},
        {"a JSON-escaped secret inside a URL is masked", test_json_inside_url},
        {"the longest secret wins at the same position", test_longest_match_wins},
        {"overlapping secrets leave no character of either",
         test_overlapping_secrets_leave_nothing},
        {"a multi-line secret is masked whole and line by line", test_multiline_secret},
        {"binary text is masked by length and the new length is reported",
         test_binary_text_and_length},
        {"mask_contains finds any form", test_contains},
        {"adding a value twice keeps one; reset forgets all", test_duplicates_and_reset},
        {"adding and applying from several threads is safe", test_threads},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "mask", tests);
}
