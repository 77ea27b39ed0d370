/* azuretest.h — what the Azure client's tests share: a clean environment and a fake Entra token
 * endpoint. */
#ifndef MLSTAGE_AZURETEST_H
#define MLSTAGE_AZURETEST_H

#include <stddef.h>

struct httpd;

/*
 * Unsets every variable the credential chain, the Resource Manager and the
 * blob client read, and points IMDS_ENDPOINT at a closed loopback port, so
 * that no test ever reaches the real instance metadata address.
 */
void azt_env_clear(void);

/* A loopback port nothing listens on (bound, then closed). */
int azt_closed_port(void);

/*
 * A fake Entra token endpoint: POST /{tenant}/oauth2/v2.0/token answers
 * {"access_token": "<prefix>-<n>", "expires_in": <expires_in>} with n
 * counting from 1; `status` other than 200 answers an invalid_client error.
 */
struct azt_entra {
    struct httpd *server;
    const char *prefix;
    int expires_in;
    int status;
    int issued;
};

void azt_entra_start(struct azt_entra *e, const char *prefix);
void azt_entra_stop(struct azt_entra *e);

/* Sets AZURE_AUTHORITY_HOST to the fake and the client-secret variables. */
void azt_entra_use(struct azt_entra *e);

#endif
