/* test_schema.c — the input schema subset: checking plugin schemas, validating inputs, defaults. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mask.h"
#include "schema.h"
#include "testutil.h"

/* Parses test JSON; a typo in a test is a test bug, so it aborts. */
static json_object *J(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (!o && strcmp(text, "null") != 0) {
        fprintf(stderr, "bad test JSON: %s\n", text);
        abort();
    }
    return o;
}

static const char *S(json_object *o)
{
    return json_object_to_json_string_ext(o,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

struct outcome {
    int rc;
    json_object *out;
    char *pointer;
    struct mls_err err;
};

/* Validates `inst` against `schema` (both JSON text) under the name "inputs". */
static struct outcome run(const char *schema, const char *inst)
{
    struct outcome o;
    memset(&o, 0, sizeof(o));
    json_object *s = J(schema), *i = J(inst);
    o.rc = schema_validate(s, i, "inputs", &o.out, &o.pointer, &o.err);
    json_object_put(s);
    json_object_put(i);
    return o;
}

static void done(struct outcome *o)
{
    json_object_put(o->out);
    free(o->pointer);
}

#define ASSERT_MSG(o, expected)                                                                    \
    do {                                                                                           \
        if (strcmp((o).err.msg, (expected)) != 0)                                                  \
            fprintf(stderr, "\nexpected message: %s\n     got message: %s\n", (expected),          \
                    (o).err.msg);                                                                  \
        CU_ASSERT_STRING_EQUAL((o).err.msg, (expected));                                           \
    } while (0)

/* NULL-safe, so a regression fails the test instead of crashing the suite. */
#define ASSERT_PTR(o, expected)                                                                    \
    do {                                                                                           \
        CU_ASSERT_PTR_NOT_NULL_FATAL((o).pointer);                                                 \
        CU_ASSERT_STRING_EQUAL((o).pointer, (expected));                                           \
    } while (0)

#define ASSERT_JSON(obj, expected)                                                                 \
    do {                                                                                           \
        const char *got_ = S(obj);                                                                 \
        if (strcmp(got_, (expected)) != 0)                                                         \
            fprintf(stderr, "\nexpected JSON: %s\n     got JSON: %s\n", (expected), got_);         \
        CU_ASSERT_STRING_EQUAL(got_, (expected));                                                  \
    } while (0)

static const char *TRAIN =
    "{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"command\"],"
    "\"properties\":{"
    "  \"command\":{\"type\":\"string\",\"minLength\":1},"
    "  \"alpha\":{\"type\":\"number\",\"default\":0.5},"
    "  \"epochs\":{\"type\":\"integer\",\"minimum\":1,\"default\":10},"
    "  \"metric\":{\"type\":\"string\",\"default\":\"rmse\"},"
    "  \"direction\":{\"enum\":[\"minimize\",\"maximize\"],\"default\":\"minimize\"},"
    "  \"thresholds\":{\"type\":\"object\",\"properties\":{"
    "     \"r2\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "     \"rmse\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"default\":100}}},"
    "  \"requests\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "     \"required\":[\"body\"],\"properties\":{"
    "       \"body\":{\"type\":\"object\"},"
    "       \"expect\":{\"type\":\"integer\",\"default\":200}}}}"
    "}}";

/* ---- validation and defaults ------------------------------------------- */

static void test_valid_inputs_get_defaults(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"python3 train.py\",\"alpha\":0.3}");
    CU_ASSERT_EQUAL(o.rc, 0);
    CU_ASSERT_PTR_NULL(o.pointer);
    ASSERT_JSON(o.out, "{\"command\":\"python3 train.py\",\"alpha\":0.3,\"epochs\":10,"
                       "\"metric\":\"rmse\",\"direction\":\"minimize\"}");
    done(&o);
}

static void test_instance_not_modified(void)
{
    json_object *s = J(TRAIN), *i = J("{\"command\":\"x\",\"thresholds\":{}}"), *out = NULL;
    struct mls_err err;
    CU_ASSERT_EQUAL(schema_validate(s, i, "inputs", &out, NULL, &err), 0);
    ASSERT_JSON(i, "{\"command\":\"x\",\"thresholds\":{}}");
    CU_ASSERT_PTR_NOT_EQUAL(out, i);
    /* The copy is independent: changing it leaves the instance alone. */
    json_object *cmd = NULL;
    json_object_object_get_ex(out, "command", &cmd);
    json_object_set_string(cmd, "changed");
    ASSERT_JSON(i, "{\"command\":\"x\",\"thresholds\":{}}");
    json_object_put(out);
    json_object_put(s);
    json_object_put(i);
}

static void test_defaults_recursive(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"thresholds\":{\"r2\":0.8},"
                                  "\"requests\":[{\"body\":{}},{\"body\":{},\"expect\":404}]}");
    CU_ASSERT_EQUAL(o.rc, 0);
    ASSERT_JSON(o.out,
                "{\"command\":\"x\",\"thresholds\":{\"r2\":0.8,\"rmse\":100},"
                "\"requests\":[{\"body\":{},\"expect\":200},{\"body\":{},\"expect\":404}],"
                "\"alpha\":0.5,\"epochs\":10,\"metric\":\"rmse\",\"direction\":\"minimize\"}");
    done(&o);
}

static void test_default_object_gets_nested_defaults(void)
{
    struct outcome o =
        run("{\"type\":\"object\",\"properties\":{\"server\":{\"type\":\"object\",\"default\":{},"
            "\"properties\":{\"port\":{\"type\":\"integer\",\"default\":8080}}}}}",
            "{}");
    CU_ASSERT_EQUAL(o.rc, 0);
    ASSERT_JSON(o.out, "{\"server\":{\"port\":8080}}");
    done(&o);
}

static void test_type_mismatch_message(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"alpha\":\"abc\"}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(o.err.code, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs.alpha: expected number, got string \"abc\"");
    ASSERT_PTR(o, "/alpha");
    CU_ASSERT_PTR_NULL(o.out);
    done(&o);
}

static void test_type_mismatch_describes_what_was_found(void)
{
    struct outcome o = run(TRAIN, "{\"command\":[\"python3\"]}");
    ASSERT_MSG(o, "inputs.command: expected string, got array");
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"metric\":true}");
    ASSERT_MSG(o, "inputs.metric: expected string, got boolean true");
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"metric\":null}");
    ASSERT_MSG(o, "inputs.metric: expected string, got null");
    done(&o);
    o = run(TRAIN, "[]");
    ASSERT_MSG(o, "inputs: expected object, got array");
    ASSERT_PTR(o, "");
    done(&o);
}

static void test_missing_required(void)
{
    struct outcome o = run(TRAIN, "{\"alpha\":1}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs: missing required input \"command\"");
    /* The missing value has no place: the pointer is its parent, here the root. */
    ASSERT_PTR(o, "");
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"requests\":[{\"body\":{}},{\"expect\":1}]}");
    ASSERT_MSG(o, "inputs.requests[1]: missing required input \"body\"");
    ASSERT_PTR(o, "/requests/1");
    done(&o);
}

static void test_default_satisfies_required(void)
{
    struct outcome o = run("{\"type\":\"object\",\"required\":[\"mode\"],"
                           "\"properties\":{\"mode\":{\"type\":\"string\",\"default\":\"fast\"}}}",
                           "{}");
    CU_ASSERT_EQUAL(o.rc, 0);
    ASSERT_JSON(o.out, "{\"mode\":\"fast\"}");
    done(&o);
}

static void test_enum_message(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"direction\":\"maximise\"}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs.direction: \"maximise\" is not one of \"minimize\", \"maximize\"");
    ASSERT_PTR(o, "/direction");
    done(&o);
}

static void test_enum_numbers_compare_by_value(void)
{
    struct outcome o = run("{\"enum\":[1,2,3]}", "2.0");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run("{\"enum\":[1,2,3]}", "4");
    ASSERT_MSG(o, "inputs: 4 is not one of 1, 2, 3");
    done(&o);
    o = run("{\"enum\":[\"1\"]}", "1");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    done(&o);
}

static void test_const(void)
{
    struct outcome o = run("{\"const\":\"v1\"}", "\"v1\"");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run("{\"const\":\"v1\"}", "\"v2\"");
    ASSERT_MSG(o, "inputs: expected \"v1\", got string \"v2\"");
    done(&o);
}

static void test_unknown_input_suggests(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"metrc\":\"r2\"}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs: unknown input \"metrc\" (did you mean \"metric\"?)");
    ASSERT_PTR(o, "/metrc");
    done(&o);
}

static void test_unknown_input_without_close_match(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"zzz\":1}");
    ASSERT_MSG(o, "inputs: unknown input \"zzz\"");
    done(&o);
}

static void test_unknown_input_reported_before_missing_required(void)
{
    /* The typo explains the missing input; say that first. */
    struct outcome o = run(TRAIN, "{\"comand\":\"x\"}");
    ASSERT_MSG(o, "inputs: unknown input \"comand\" (did you mean \"command\"?)");
    done(&o);
}

static void test_extra_inputs_allowed_without_additional_false(void)
{
    struct outcome o = run("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}",
                           "{\"a\":\"x\",\"b\":{\"c\":[1]}}");
    CU_ASSERT_EQUAL(o.rc, 0);
    ASSERT_JSON(o.out, "{\"a\":\"x\",\"b\":{\"c\":[1]}}");
    done(&o);
}

static void test_additional_properties_schema(void)
{
    const char *tags = "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}";
    struct outcome o = run(tags, "{\"team\":\"ml\",\"stage\":\"dev\"}");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(tags, "{\"team\":\"ml\",\"cost\":3}");
    ASSERT_MSG(o, "inputs.cost: expected string, got number 3");
    ASSERT_PTR(o, "/cost");
    done(&o);
}

static void test_nested_bounds(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"thresholds\":{\"r2\":1.5}}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs.thresholds.r2: 1.5 is above the maximum 1");
    ASSERT_PTR(o, "/thresholds/r2");
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"thresholds\":{\"r2\":-0.25}}");
    ASSERT_MSG(o, "inputs.thresholds.r2: -0.25 is below the minimum 0");
    done(&o);
}

static void test_bounds_are_inclusive_unless_exclusive(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"thresholds\":{\"r2\":1,\"rmse\":0.1}}");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"thresholds\":{\"rmse\":0}}");
    ASSERT_MSG(o, "inputs.thresholds.rmse: 0 is not above the exclusive minimum 0");
    done(&o);
    o = run("{\"exclusiveMaximum\":10}", "10");
    ASSERT_MSG(o, "inputs: 10 is not below the exclusive maximum 10");
    done(&o);
    o = run("{\"exclusiveMaximum\":10}", "9.999");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
}

static void test_array_pointers(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"requests\":[{\"body\":\"{}\"}]}");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs.requests[0].body: expected object, got string \"{}\"");
    ASSERT_PTR(o, "/requests/0/body");
    done(&o);
}

static void test_integer_accepts_whole_doubles(void)
{
    /* YAML gives "epochs: 20.0" as a double; the copy holds a JSON integer. */
    json_object *s = J(TRAIN), *i = json_object_new_object(), *out = NULL, *epochs = NULL;
    struct mls_err err;
    json_object_object_add(i, "command", json_object_new_string("x"));
    json_object_object_add(i, "epochs", json_object_new_double(20.0));
    CU_ASSERT_EQUAL(schema_validate(s, i, "inputs", &out, NULL, &err), 0);
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "epochs", &epochs));
    CU_ASSERT_TRUE(json_object_is_type(epochs, json_type_int));
    CU_ASSERT_EQUAL(json_object_get_int64(epochs), 20);
    json_object_put(out);
    json_object_put(i);
    json_object_put(s);

    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"epochs\":1.5}");
    ASSERT_MSG(o, "inputs.epochs: expected integer, got number 1.5");
    done(&o);
    o = run(TRAIN, "{\"command\":\"x\",\"epochs\":0}");
    ASSERT_MSG(o, "inputs.epochs: 0 is below the minimum 1");
    done(&o);
}

static void test_number_accepts_integers_and_keeps_them(void)
{
    struct outcome o = run(TRAIN, "{\"command\":\"x\",\"alpha\":2}");
    CU_ASSERT_EQUAL(o.rc, 0);
    json_object *alpha = NULL;
    json_object_object_get_ex(o.out, "alpha", &alpha);
    CU_ASSERT_EQUAL(json_object_get_int64(alpha), 2);
    done(&o);
}

static void test_non_finite_is_not_a_number(void)
{
    json_object *s = J("{\"type\":\"number\"}"), *nan_v = json_object_new_double(NAN);
    struct mls_err err;
    CU_ASSERT_EQUAL(schema_validate(s, nan_v, "inputs", NULL, NULL, &err), MLSTAGE_EINPUT);
    json_object_put(nan_v);
    json_object_put(s);
}

static void test_string_lengths_count_characters(void)
{
    const char *schema = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    struct outcome o = run(schema, "\"\xc3\xa9t\xc3\xa9\""); /* "été": 3 characters, 5 bytes */
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "\"a\"");
    ASSERT_MSG(o, "inputs: \"a\" is shorter than the minimum length 2");
    done(&o);
    o = run(schema, "\"abcd\"");
    ASSERT_MSG(o, "inputs: \"abcd\" is longer than the maximum length 3");
    done(&o);
}

static void test_pattern_is_posix_ere(void)
{
    const char *schema = "{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9-]{2,31}$\"}";
    struct outcome o = run(schema, "\"diabetes-model\"");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "\"Diabetes Model\"");
    ASSERT_MSG(o, "inputs: \"Diabetes Model\" does not match the pattern "
                  "\"^[a-z][a-z0-9-]{2,31}$\"");
    done(&o);
    /* Unanchored patterns match anywhere, as JSON Schema says. */
    o = run("{\"pattern\":\"b+\"}", "\"abbc\"");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
}

static void test_array_item_counts(void)
{
    const char *schema = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":2}";
    struct outcome o = run(schema, "[]");
    ASSERT_MSG(o, "inputs: expected at least 1 item, got 0");
    done(&o);
    o = run(schema, "[1,2,3]");
    ASSERT_MSG(o, "inputs: expected at most 2 items, got 3");
    done(&o);
    o = run(schema, "[1,2]");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
}

static void test_type_lists(void)
{
    const char *schema = "{\"type\":[\"string\",\"null\"]}";
    struct outcome o = run(schema, "null");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "3");
    ASSERT_MSG(o, "inputs: expected string or null, got number 3");
    done(&o);
    o = run("{\"type\":[\"string\",\"integer\",\"boolean\"]}", "1.5");
    ASSERT_MSG(o, "inputs: expected string, integer or boolean, got number 1.5");
    done(&o);
}

static void test_any_of(void)
{
    const char *schema = "{\"type\":\"object\",\"properties\":{\"command\":{\"anyOf\":["
                         "{\"type\":\"string\"},"
                         "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1}]}}}";
    struct outcome o = run(schema, "{\"command\":\"make\"}");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "{\"command\":[\"make\",\"all\"]}");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "{\"command\":3}");
    ASSERT_MSG(o, "inputs.command: does not match any of the allowed forms: "
                  "(1) expected string, got number 3; (2) expected array, got number 3");
    ASSERT_PTR(o, "/command");
    done(&o);
    o = run(schema, "{\"command\":[\"make\",1]}");
    ASSERT_MSG(o, "inputs.command: does not match any of the allowed forms: "
                  "(1) expected string, got array; "
                  "(2) inputs.command[1]: expected string, got number 1");
    done(&o);
}

static void test_any_of_branch_defaults(void)
{
    const char *schema = "{\"anyOf\":[{\"type\":\"object\",\"required\":[\"url\"],"
                         "\"properties\":{\"url\":{\"type\":\"string\"},"
                         "\"timeout\":{\"type\":\"number\",\"default\":30}}},"
                         "{\"type\":\"string\"}]}";
    struct outcome o = run(schema, "{\"url\":\"http://127.0.0.1\"}");
    CU_ASSERT_EQUAL(o.rc, 0);
    ASSERT_JSON(o.out, "{\"url\":\"http://127.0.0.1\",\"timeout\":30}");
    done(&o);
}

static void test_one_of_exactly_one(void)
{
    const char *schema = "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\",\"minimum\":5}]}";
    struct outcome o = run(schema, "2");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "5.5");
    CU_ASSERT_EQUAL(o.rc, 0);
    done(&o);
    o = run(schema, "7");
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    ASSERT_MSG(o, "inputs: matches both form 1 and form 2 of oneOf, expected exactly one");
    done(&o);
}

static void test_odd_keys_are_quoted_and_escaped(void)
{
    struct outcome o = run("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"a/b~c\":1}");
    ASSERT_MSG(o, "inputs[\"a/b~c\"]: expected string, got number 1");
    ASSERT_PTR(o, "/a~1b~0c");
    done(&o);
}

static void test_long_values_are_shortened(void)
{
    char inst[300];
    memset(inst, 'x', sizeof(inst));
    inst[0] = '"';
    inst[201] = '"';
    inst[202] = '\0';
    struct outcome o = run("{\"type\":\"integer\"}", inst);
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    CU_ASSERT_TRUE(strlen(o.err.msg) < 120);
    TU_ASSERT_CONTAINS(o.err.msg, "...\"");
    done(&o);
}

/*
 * A secret longer than the excerpt must not leak as its first 60 bytes:
 * the masker only recognises a secret whole, so the value is masked before
 * it is cut, never after.
 */
static void test_long_secret_values_are_masked_before_they_are_cut(void)
{
    const char *secret = "https://prod-00.westeurope.logic.azure.com/workflows/0a1b2c3d4e5f"
                         "/triggers/manual/paths/invoke?sig=Zx9SecretSig";
    mask_add(secret);
    char *inst = tu_fmt("\"%s\"", secret);
    struct outcome o = run("{\"type\":\"integer\"}", inst);
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    TU_ASSERT_NOT_CONTAINS(o.err.msg, "prod-00.westeurope");
    TU_ASSERT_CONTAINS(o.err.msg, "got string \"***\"");
    done(&o);
    char *mixed = tu_fmt("\"see %s\"", secret);
    o = run("{\"enum\":[\"a\"]}", mixed);
    CU_ASSERT_EQUAL(o.rc, MLSTAGE_EINPUT);
    TU_ASSERT_NOT_CONTAINS(o.err.msg, "prod-00");
    TU_ASSERT_CONTAINS(o.err.msg, "\"see ***\"");
    done(&o);
    free(mixed);
    free(inst);
    mask_reset();
}

static void test_null_pointer_out_params(void)
{
    json_object *s = J(TRAIN), *i = J("{}");
    struct mls_err err;
    CU_ASSERT_EQUAL(schema_validate(s, i, NULL, NULL, NULL, &err), MLSTAGE_EINPUT);
    /* Without a root name the message starts with the problem itself. */
    CU_ASSERT_STRING_EQUAL(err.msg, "missing required input \"command\"");
    json_object_put(s);
    json_object_put(i);
}

/* ---- schema_check ------------------------------------------------------- */

static int check(const char *schema, struct mls_err *err)
{
    json_object *s = J(schema);
    err_clear(err);
    int rc = schema_check(s, err);
    json_object_put(s);
    return rc;
}

#define ASSERT_CHECK_FAILS(schema, expected)                                                       \
    do {                                                                                           \
        struct mls_err e_;                                                                         \
        CU_ASSERT_EQUAL(check((schema), &e_), MLSTAGE_EPLUGIN);                                    \
        CU_ASSERT_EQUAL(e_.code, MLSTAGE_EPLUGIN);                                                 \
        if (strcmp(e_.msg, (expected)) != 0)                                                       \
            fprintf(stderr, "\nexpected message: %s\n     got message: %s\n", (expected), e_.msg); \
        CU_ASSERT_STRING_EQUAL(e_.msg, (expected));                                                \
    } while (0)

static void test_check_accepts_full_subset(void)
{
    struct mls_err err;
    CU_ASSERT_EQUAL(check(TRAIN, &err), 0);
    CU_ASSERT_EQUAL(
        check("{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"$comment\":\"c\","
              "\"title\":\"t\",\"description\":\"d\",\"type\":\"object\","
              "\"properties\":{\"s\":{\"type\":\"string\",\"format\":\"uri\",\"pattern\":\"^h\","
              "\"minLength\":1,\"maxLength\":9,\"examples\":[\"http\"]},"
              "\"n\":{\"type\":[\"number\",\"null\"],\"exclusiveMinimum\":0,"
              "\"exclusiveMaximum\":1.5,\"default\":null},"
              "\"a\":{\"type\":\"array\",\"items\":{\"const\":1},\"minItems\":0,\"maxItems\":3},"
              "\"o\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"boolean\"}]},"
              "\"x\":{\"anyOf\":[{\"enum\":[1,\"a\",null]}]}},"
              "\"additionalProperties\":{\"type\":\"string\"}}",
              &err),
        0);
    if (err.code)
        fprintf(stderr, "\n%s\n", err.msg);
}

static void test_check_rejects_unknown_keywords(void)
{
    ASSERT_CHECK_FAILS("{\"type\":\"object\",\"properties\":{\"alpha\":{\"type\":\"number\","
                       "\"minimun\":0}}}",
                       "input schema at /properties/alpha: unsupported keyword \"minimun\" "
                       "(did you mean \"minimum\"?)");
    ASSERT_CHECK_FAILS("{\"$ref\":\"#/definitions/x\"}",
                       "input schema: unsupported keyword \"$ref\"");
}

static void test_check_rejects_wrong_keyword_types(void)
{
    ASSERT_CHECK_FAILS("{\"minimum\":\"1\"}",
                       "input schema: \"minimum\" must be a number, got string \"1\"");
    ASSERT_CHECK_FAILS("{\"required\":\"name\"}",
                       "input schema: \"required\" must be an array of property names, got "
                       "string \"name\"");
    ASSERT_CHECK_FAILS("{\"type\":\"float\"}",
                       "input schema: unknown type \"float\" (expected string, number, integer, "
                       "boolean, object, array or null)");
    ASSERT_CHECK_FAILS("{\"additionalProperties\":\"no\"}",
                       "input schema: \"additionalProperties\" must be a boolean or a schema, got "
                       "string \"no\"");
    ASSERT_CHECK_FAILS("{\"maxLength\":-1}",
                       "input schema: \"maxLength\" must be a non-negative integer, got number -1");
    ASSERT_CHECK_FAILS("{\"enum\":[]}",
                       "input schema: \"enum\" must be a non-empty array, got array");
    ASSERT_CHECK_FAILS("{\"items\":[{\"type\":\"string\"}]}",
                       "input schema: \"items\" must be a schema (an object), got array");
    ASSERT_CHECK_FAILS("{\"exclusiveMinimum\":true}",
                       "input schema: \"exclusiveMinimum\" must be a number, got boolean true");
    ASSERT_CHECK_FAILS("{\"type\":[\"string\",\"string\"]}",
                       "input schema: type \"string\" is listed twice");
    ASSERT_CHECK_FAILS("\"object\"", "input schema: expected a schema (an object), got string "
                                     "\"object\"");
}

static void test_check_rejects_bad_pattern(void)
{
    struct mls_err err;
    CU_ASSERT_EQUAL(check("{\"properties\":{\"n\":{\"pattern\":\"([a-z\"}}}", &err),
                    MLSTAGE_EPLUGIN);
    TU_ASSERT_CONTAINS(err.msg, "input schema at /properties/n: \"pattern\" \"([a-z\" is not a "
                                "valid POSIX extended regular expression");
}

static void test_check_rejects_invalid_default(void)
{
    ASSERT_CHECK_FAILS("{\"properties\":{\"alpha\":{\"type\":\"number\",\"default\":\"0.5\"}}}",
                       "input schema at /properties/alpha: the default does not validate: "
                       "expected number, got string \"0.5\"");
    ASSERT_CHECK_FAILS("{\"properties\":{\"t\":{\"type\":\"object\",\"default\":{\"r2\":2},"
                       "\"properties\":{\"r2\":{\"maximum\":1}}}}}",
                       "input schema at /properties/t: the default does not validate: "
                       "r2: 2 is above the maximum 1");
    ASSERT_CHECK_FAILS("{\"properties\":{\"d\":{\"enum\":[\"min\",\"max\"],\"default\":\"mid\"}}}",
                       "input schema at /properties/d: the default does not validate: "
                       "\"mid\" is not one of \"min\", \"max\"");
}

static void test_check_required_must_be_declared_when_closed(void)
{
    ASSERT_CHECK_FAILS("{\"type\":\"object\",\"additionalProperties\":false,"
                       "\"required\":[\"command\"],\"properties\":{\"comand\":{}}}",
                       "input schema: \"required\" names \"command\", which is not in "
                       "\"properties\" (and additionalProperties is false)");
    struct mls_err err;
    /* Open objects may require what they do not describe. */
    CU_ASSERT_EQUAL(check("{\"type\":\"object\",\"required\":[\"command\"]}", &err), 0);
}

static void test_check_rejects_impossible_bounds(void)
{
    ASSERT_CHECK_FAILS("{\"minimum\":5,\"maximum\":1}",
                       "input schema: \"minimum\" 5 is above \"maximum\" 1");
    ASSERT_CHECK_FAILS("{\"items\":{\"minLength\":3,\"maxLength\":2}}",
                       "input schema at /items: \"minLength\" 3 is above \"maxLength\" 2");
}

static void test_check_points_into_nested_schemas(void)
{
    ASSERT_CHECK_FAILS("{\"properties\":{\"t\":{\"properties\":{\"r2\":{\"type\":\"real\"}}}}}",
                       "input schema at /properties/t/properties/r2: unknown type \"real\" "
                       "(expected string, number, integer, boolean, object, array or null)");
    ASSERT_CHECK_FAILS("{\"anyOf\":[{\"type\":\"string\"},{\"maxItem\":1}]}",
                       "input schema at /anyOf/1: unsupported keyword \"maxItem\" "
                       "(did you mean \"maxItems\"?)");
    ASSERT_CHECK_FAILS(
        "{\"properties\":{\"a/b\":{\"title\":1}}}",
        "input schema at /properties/a~1b: \"title\" must be a string, got number 1");
}

/* ---- schema_coerce ------------------------------------------------------ */

static json_object *coerce(const char *key, const char *text, struct mls_err *err)
{
    json_object *s = J(TRAIN);
    err_clear(err);
    json_object *v = schema_coerce(s, key, text, err);
    json_object_put(s);
    return v;
}

static void test_coerce_converts_to_declared_type(void)
{
    struct mls_err err;
    json_object *v = coerce("epochs", "20", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_int));
    CU_ASSERT_EQUAL(json_object_get_int64(v), 20);
    json_object_put(v);
    v = coerce("alpha", "0.25", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_double));
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(v), 0.25, 1e-12);
    json_object_put(v);
    v = coerce("alpha", "1e-3", &err);
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(v), 0.001, 1e-12);
    json_object_put(v);
    v = coerce("command", "42", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "42");
    json_object_put(v);
    v = coerce("thresholds", "{\"r2\":0.9}", &err);
    ASSERT_JSON(v, "{\"r2\":0.9}");
    json_object_put(v);
    v = coerce("requests", "[{\"body\":{}}]", &err);
    ASSERT_JSON(v, "[{\"body\":{}}]");
    json_object_put(v);
}

static void test_coerce_booleans(void)
{
    json_object *s = J("{\"properties\":{\"fail_on_reject\":{\"type\":\"boolean\"}}}");
    struct mls_err err;
    json_object *v = schema_coerce(s, "fail_on_reject", "true", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
    json_object_put(v);
    v = schema_coerce(s, "fail_on_reject", "False", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
    json_object_put(v);
    v = schema_coerce(s, "fail_on_reject", "yes please", &err);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_STRING_EQUAL(err.msg, "--set fail_on_reject: expected boolean, got \"yes please\"");
    json_object_put(s);
}

static void test_coerce_rejects_what_does_not_convert(void)
{
    struct mls_err err;
    CU_ASSERT_PTR_NULL(coerce("alpha", "abc", &err));
    CU_ASSERT_EQUAL(err.code, MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "--set alpha: expected number, got \"abc\"");
    CU_ASSERT_PTR_NULL(coerce("epochs", "2.5", &err));
    CU_ASSERT_STRING_EQUAL(err.msg, "--set epochs: expected integer, got \"2.5\"");
    /* strtod would take these; a user did not mean a number. */
    CU_ASSERT_PTR_NULL(coerce("alpha", "0x10", &err));
    CU_ASSERT_PTR_NULL(coerce("alpha", "nan", &err));
    CU_ASSERT_PTR_NULL(coerce("alpha", "", &err));
    CU_ASSERT_PTR_NULL(coerce("epochs", "99999999999999999999", &err));
    CU_ASSERT_PTR_NULL(coerce("thresholds", "{\"r2\":", &err));
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "--set thresholds: expected object (as JSON), got \"{\\\"r2\\\":\"");
}

static void test_coerce_undeclared_keys_stay_strings(void)
{
    struct mls_err err;
    json_object *v = coerce("not_an_input", "0.5", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "0.5");
    json_object_put(v);
}

static void test_coerce_uses_branch_types(void)
{
    json_object *s = J("{\"properties\":{\"n\":{\"anyOf\":[{\"type\":\"integer\"},"
                       "{\"type\":\"string\",\"enum\":[\"auto\"]}]}}}");
    struct mls_err err;
    json_object *v = schema_coerce(s, "n", "4", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_int));
    json_object_put(v);
    v = schema_coerce(s, "n", "auto", &err);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    json_object_put(v);
    json_object_put(s);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"valid inputs come back as a copy with defaults applied", test_valid_inputs_get_defaults},
        {"the instance is not modified and the copy is independent", test_instance_not_modified},
        {"defaults are applied recursively into nested objects and array items",
         test_defaults_recursive},
        {"an object default gets the defaults nested inside it",
         test_default_object_gets_nested_defaults},
        {"a wrong type names the input, the expected type and the value",
         test_type_mismatch_message},
        {"a wrong type describes what was found", test_type_mismatch_describes_what_was_found},
        {"a missing required input is named, the pointer is its parent", test_missing_required},
        {"a default satisfies required", test_default_satisfies_required},
        {"a value outside enum lists the allowed values", test_enum_message},
        {"enum compares numbers by value, not by JSON type", test_enum_numbers_compare_by_value},
        {"const accepts only its value", test_const},
        {"an unknown input suggests the closest declared name", test_unknown_input_suggests},
        {"an unknown input far from every name gets no suggestion",
         test_unknown_input_without_close_match},
        {"an unknown input is reported before the required input it misspells",
         test_unknown_input_reported_before_missing_required},
        {"undeclared inputs are kept when additionalProperties is not false",
         test_extra_inputs_allowed_without_additional_false},
        {"additionalProperties as a schema validates undeclared inputs",
         test_additional_properties_schema},
        {"nested bounds are named with dots and pointed at with a JSON pointer",
         test_nested_bounds},
        {"minimum and maximum are inclusive, the exclusive forms are not",
         test_bounds_are_inclusive_unless_exclusive},
        {"array items are pointed at by index: /requests/0/body", test_array_pointers},
        {"integer accepts 1.0 from YAML as 1, but not 1.5", test_integer_accepts_whole_doubles},
        {"number accepts integers and keeps them", test_number_accepts_integers_and_keeps_them},
        {"NaN is not a number", test_non_finite_is_not_a_number},
        {"string lengths count characters, not bytes", test_string_lengths_count_characters},
        {"pattern is a POSIX ERE that matches anywhere unless anchored", test_pattern_is_posix_ere},
        {"minItems and maxItems bound arrays", test_array_item_counts},
        {"a type list accepts any of its types and names them all", test_type_lists},
        {"anyOf accepts any branch and explains each branch's failure", test_any_of},
        {"anyOf applies the matching branch's defaults", test_any_of_branch_defaults},
        {"oneOf requires exactly one matching branch", test_one_of_exactly_one},
        {"odd keys are quoted in names and escaped in pointers",
         test_odd_keys_are_quoted_and_escaped},
        {"long values are shortened in messages", test_long_values_are_shortened},
        {"long secret values are masked before they are cut",
         test_long_secret_values_are_masked_before_they_are_cut},
        {"out, bad_pointer and root_name may be NULL", test_null_pointer_out_params},
        {"check accepts every supported keyword", test_check_accepts_full_subset},
        {"check rejects unknown keywords with a suggestion", test_check_rejects_unknown_keywords},
        {"check rejects keyword values of the wrong type", test_check_rejects_wrong_keyword_types},
        {"check rejects a pattern that is not a POSIX ERE", test_check_rejects_bad_pattern},
        {"check rejects a default that does not validate", test_check_rejects_invalid_default},
        {"check rejects required names not declared when additionalProperties is false",
         test_check_required_must_be_declared_when_closed},
        {"check rejects bounds no value can meet", test_check_rejects_impossible_bounds},
        {"check points into nested schemas", test_check_points_into_nested_schemas},
        {"coerce converts --set text to the declared type", test_coerce_converts_to_declared_type},
        {"coerce reads booleans case-insensitively and nothing else", test_coerce_booleans},
        {"coerce rejects text that does not convert, saying what was expected",
         test_coerce_rejects_what_does_not_convert},
        {"coerce keeps undeclared keys as strings", test_coerce_undeclared_keys_stay_strings},
        {"coerce takes the types of anyOf branches", test_coerce_uses_branch_types},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "schema", tests);
}
