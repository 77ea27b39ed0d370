/* blob_upload.c — uploads one file with mlstage's blob client, for bench/blob_upload.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/azure.h>
#include <mlstage/error.h>

#include "ctx.h"
#include "util.h"

static int usage(void)
{
    fprintf(stderr, "usage: blob_upload_bench ENDPOINT CONTAINER FILE BLOB --sas SAS\n"
                    "       blob_upload_bench ENDPOINT CONTAINER FILE BLOB --shared-key ACCOUNT "
                    "KEY\n"
                    "options after those: --block-mib N --threads N --log DIR (writes "
                    "DIR/http.log)\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 7)
        return usage();
    struct mlstage_blob_target t = {.endpoint = argv[1], .container = argv[2]};
    int i = 5;
    if (strcmp(argv[i], "--sas") == 0) {
        t.auth = MLSTAGE_BLOB_SAS;
        t.sas = argv[i + 1];
        i += 2;
    } else if (strcmp(argv[i], "--shared-key") == 0 && argc >= 8) {
        t.auth = MLSTAGE_BLOB_SHARED_KEY;
        t.account_name = argv[i + 1];
        t.account_key = argv[i + 2];
        i += 3;
    } else {
        return usage();
    }
    struct mlstage_blob_upload_opts o = {0};
    const char *log_dir = NULL;
    for (; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--block-mib") == 0)
            o.block_size = (size_t)atoi(argv[i + 1]) << 20;
        else if (strcmp(argv[i], "--threads") == 0)
            o.concurrency = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--log") == 0)
            log_dir = argv[i + 1];
        else
            return usage();
    }
    struct mlstage_ctx *ctx = ctx_new();
    if (log_dir)
        ctx->run_dir = xstrdup(log_dir);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    uint64_t size = 0;
    double t0 = now_mono();
    int rc = mlstage_blob_upload_file(ctx, &t, argv[3], argv[4], &o, hex, &size);
    double took = now_mono() - t0;
    if (rc != 0)
        fprintf(stderr, "blob_upload_bench: %s\n", mlstage_error_message(ctx));
    else
        printf("%s %llu bytes in %.3f s\n", hex, (unsigned long long)size, took);
    ctx_free(ctx);
    return rc ? mlstage_exit_code(rc) : 0;
}
