/* curl_lazy.c — libcurl loaded on first use, so a stage that never speaks HTTP does not pay for it.
 */
#define CURL_LAZY_IMPL
#include "curl_lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static struct curl_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define CURL_SONAME "libcurl.so.4"

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "mlstage: %s lacks %s (libcurl too old?)\n", CURL_SONAME, name);
        exit(70);
    }
    return p;
}

static void load(void)
{
    void *lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "mlstage: cannot load %s: %s (apt-get install libcurl4)\n", CURL_SONAME,
                dlerror());
        exit(70);
    }
    /* Casting through void * is how dlsym results become function pointers in POSIX. */
#define LOAD(field, name) *(void **)&api.field = sym(lib, name)
    LOAD(global_init, "curl_global_init");
    LOAD(easy_init, "curl_easy_init");
    LOAD(easy_setopt, "curl_easy_setopt");
    LOAD(easy_perform, "curl_easy_perform");
    LOAD(easy_getinfo, "curl_easy_getinfo");
    LOAD(easy_cleanup, "curl_easy_cleanup");
    LOAD(easy_reset, "curl_easy_reset");
    LOAD(easy_strerror, "curl_easy_strerror");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
    LOAD(getdate, "curl_getdate");
    LOAD(free, "curl_free");
    LOAD(url, "curl_url");
    LOAD(url_cleanup, "curl_url_cleanup");
    LOAD(url_set, "curl_url_set");
    LOAD(url_get, "curl_url_get");
    LOAD(url_strerror, "curl_url_strerror");
#undef LOAD
}

const struct curl_api *curl_lazy(void)
{
    pthread_once(&once, load);
    return &api;
}
