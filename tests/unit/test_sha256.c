/* test_sha256.c — SHA-256 of files and buffers, and copies hashed in the same pass. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>

#include "testutil.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* The digest sha256sum prints for `path`, newly allocated. */
static char *sha256sum_of(const char *path)
{
    struct tu_cmd cmd;
    const char *argv[] = {"sha256sum", path, NULL};
    CU_ASSERT_EQUAL_FATAL(tu_run(argv, NULL, NULL, NULL, 0, &cmd), 0);
    TU_ASSERT_EXIT(&cmd, 0);
    char *hex = strndup(cmd.out, MLSTAGE_SHA256_HEX_LEN);
    tu_cmd_free(&cmd);
    return hex;
}

/* 1 MiB + 1 bytes of a non-repeating-per-chunk pattern: crosses the read buffer boundary. */
static char *write_pattern(const char *dir, size_t n)
{
    char *path = tu_fmt("%s/pattern.bin", dir);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 31u + (i >> 11)) & 0xff), f);
    CU_ASSERT_EQUAL(fclose(f), 0);
    return path;
}

static void buffer_digests_match_known_vectors(void)
{
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    mlstage_sha256_buf("", 0, hex);
    CU_ASSERT_STRING_EQUAL(hex, EMPTY_SHA256);
    mlstage_sha256_buf("abc", 3, hex);
    CU_ASSERT_STRING_EQUAL(hex, ABC_SHA256);
}

static void empty_file_has_the_empty_digest_and_size_zero(void)
{
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/empty", dir);
    CU_ASSERT_EQUAL(tu_write(path, ""), 0);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 99;
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, &size), 0);
    CU_ASSERT_STRING_EQUAL(hex, EMPTY_SHA256);
    CU_ASSERT_EQUAL(size, 0);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void abc_file_has_the_known_digest(void)
{
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/abc", dir);
    CU_ASSERT_EQUAL(tu_write(path, "abc"), 0);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, &size), 0);
    CU_ASSERT_STRING_EQUAL(hex, ABC_SHA256);
    CU_ASSERT_EQUAL(size, 3);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void file_larger_than_the_buffer_matches_sha256sum(void)
{
    char *dir = tu_tmpdir();
    size_t n = (1u << 20) + 1;
    char *path = write_pattern(dir, n);
    char *expected = sha256sum_of(path);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, &size), 0);
    CU_ASSERT_STRING_EQUAL(hex, expected);
    CU_ASSERT_EQUAL(size, n);
    /* The size may be omitted. */
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, NULL), 0);
    CU_ASSERT_STRING_EQUAL(hex, expected);
    free(expected);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void file_of_exactly_two_buffers_matches_sha256sum(void)
{
    char *dir = tu_tmpdir();
    size_t n = 2u << 20;
    char *path = write_pattern(dir, n);
    char *expected = sha256sum_of(path);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, &size), 0);
    CU_ASSERT_STRING_EQUAL(hex, expected);
    CU_ASSERT_EQUAL(size, n);
    free(expected);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void missing_file_is_not_found(void)
{
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_sha256_file("/nonexistent/mlstage/file", hex, NULL), MLSTAGE_ENOTFOUND);
    CU_ASSERT_EQUAL(errno, ENOENT);
}

static void directory_cannot_be_hashed_as_a_file(void)
{
    char *dir = tu_tmpdir();
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_sha256_file(dir, hex, NULL), MLSTAGE_EIO);
    tu_rm_rf(dir);
    free(dir);
}

static void copy_hashed_copies_bytes_and_returns_their_digest(void)
{
    char *dir = tu_tmpdir();
    size_t n = (1u << 20) + 1;
    char *src = write_pattern(dir, n);
    char *dst = tu_fmt("%s/copy.bin", dir);
    char *expected = sha256sum_of(src);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    CU_ASSERT_EQUAL(mlstage_copy_hashed(src, dst, hex, &size), 0);
    CU_ASSERT_STRING_EQUAL(hex, expected);
    CU_ASSERT_EQUAL(size, n);
    char *copied = sha256sum_of(dst);
    CU_ASSERT_STRING_EQUAL(copied, expected);
    struct stat st;
    CU_ASSERT_EQUAL(stat(dst, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
    CU_ASSERT_EQUAL((size_t)st.st_size, n);
    free(copied);
    free(expected);
    free(dst);
    free(src);
    tu_rm_rf(dir);
    free(dir);
}

static void copy_hashed_replaces_an_existing_destination_and_leaves_no_temp_file(void)
{
    char *dir = tu_tmpdir();
    char *src = tu_fmt("%s/src", dir);
    char *dst = tu_fmt("%s/dst", dir);
    CU_ASSERT_EQUAL(tu_write(src, "abc"), 0);
    CU_ASSERT_EQUAL(tu_write(dst, "old content that is longer"), 0);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_copy_hashed(src, dst, hex, NULL), 0);
    CU_ASSERT_STRING_EQUAL(hex, ABC_SHA256);
    char *got = tu_read(dst, NULL);
    CU_ASSERT_STRING_EQUAL(got, "abc");
    free(got);
    struct tu_cmd cmd;
    char *ls = tu_fmt("ls -A '%s'", dir);
    tu_sh(ls, NULL, NULL, &cmd);
    CU_ASSERT_STRING_EQUAL(cmd.out, "dst\nsrc\n");
    tu_cmd_free(&cmd);
    free(ls);
    free(src);
    free(dst);
    tu_rm_rf(dir);
    free(dir);
}

static void copy_hashed_from_a_missing_source_creates_nothing(void)
{
    char *dir = tu_tmpdir();
    char *src = tu_fmt("%s/absent", dir);
    char *dst = tu_fmt("%s/dst", dir);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_copy_hashed(src, dst, hex, NULL), MLSTAGE_ENOTFOUND);
    struct tu_cmd cmd;
    char *ls = tu_fmt("ls -A '%s'", dir);
    tu_sh(ls, NULL, NULL, &cmd);
    CU_ASSERT_STRING_EQUAL(cmd.out, "");
    tu_cmd_free(&cmd);
    free(ls);
    free(src);
    free(dst);
    tu_rm_rf(dir);
    free(dir);
}

static void copy_hashed_into_a_missing_folder_fails_and_leaves_the_source(void)
{
    char *dir = tu_tmpdir();
    char *src = tu_fmt("%s/src", dir);
    char *dst = tu_fmt("%s/no/such/folder/dst", dir);
    CU_ASSERT_EQUAL(tu_write(src, "abc"), 0);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_copy_hashed(src, dst, hex, NULL), MLSTAGE_ENOTFOUND);
    char *got = tu_read(src, NULL);
    CU_ASSERT_STRING_EQUAL(got, "abc");
    free(got);
    free(src);
    free(dst);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"buffer digests match the known vectors (empty, abc)", buffer_digests_match_known_vectors},
        {"an empty file has the empty digest and size 0",
         empty_file_has_the_empty_digest_and_size_zero},
        {"a file holding abc has the known digest", abc_file_has_the_known_digest},
        {"a file of 1 MiB + 1 bytes matches sha256sum",
         file_larger_than_the_buffer_matches_sha256sum},
        {"a file of exactly two buffers matches sha256sum",
         file_of_exactly_two_buffers_matches_sha256sum},
        {"a missing file is not found", missing_file_is_not_found},
        {"a directory cannot be hashed as a file", directory_cannot_be_hashed_as_a_file},
        {"copy_hashed copies the bytes and returns their digest",
         copy_hashed_copies_bytes_and_returns_their_digest},
        {"copy_hashed replaces an existing destination and leaves no temp file",
         copy_hashed_replaces_an_existing_destination_and_leaves_no_temp_file},
        {"copy_hashed from a missing source creates nothing",
         copy_hashed_from_a_missing_source_creates_nothing},
        {"copy_hashed into a missing folder fails and leaves the source",
         copy_hashed_into_a_missing_folder_fails_and_leaves_the_source},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "sha256", tests);
}
