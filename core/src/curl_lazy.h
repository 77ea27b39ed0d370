/* curl_lazy.h — libcurl loaded on first use, so a stage that never speaks HTTP does not pay for it.
 */
#ifndef MLSTAGE_CURL_LAZY_H
#define MLSTAGE_CURL_LAZY_H

/*
 * libcurl pulls in some thirty shared libraries (TLS, Kerberos, LDAP,
 * SSH...); mapping and relocating them at every start costs about 3 ms,
 * a third of a no-op stage. The core therefore opens libcurl.so.4 with
 * dlopen the first time a curl function is called. Code includes this
 * header instead of <curl/curl.h> and calls curl_* as usual: each name
 * below resolves through the loaded table.
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

struct curl_api {
    __typeof__(&curl_global_init) global_init;
    __typeof__(&curl_easy_init) easy_init;
    __typeof__(&curl_easy_setopt) easy_setopt;
    __typeof__(&curl_easy_perform) easy_perform;
    __typeof__(&curl_easy_getinfo) easy_getinfo;
    __typeof__(&curl_easy_cleanup) easy_cleanup;
    __typeof__(&curl_easy_reset) easy_reset;
    __typeof__(&curl_easy_strerror) easy_strerror;
    __typeof__(&curl_slist_append) slist_append;
    __typeof__(&curl_slist_free_all) slist_free_all;
    __typeof__(&curl_getdate) getdate;
    __typeof__(&curl_free) free;
    __typeof__(&curl_url) url;
    __typeof__(&curl_url_cleanup) url_cleanup;
    __typeof__(&curl_url_set) url_set;
    __typeof__(&curl_url_get) url_get;
    __typeof__(&curl_url_strerror) url_strerror;
};

/*
 * The loaded table; loads libcurl on the first call (thread-safe). If
 * libcurl cannot be loaded — it is as required as a linked library — the
 * process stops with a message naming the Debian package, exit 70.
 */
const struct curl_api *curl_lazy(void);

#ifndef CURL_LAZY_IMPL
/* curl.h wraps these two in argument-count macros of its own. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init    (curl_lazy()->global_init)
#define curl_easy_init      (curl_lazy()->easy_init)
#define curl_easy_setopt    (curl_lazy()->easy_setopt)
#define curl_easy_perform   (curl_lazy()->easy_perform)
#define curl_easy_getinfo   (curl_lazy()->easy_getinfo)
#define curl_easy_cleanup   (curl_lazy()->easy_cleanup)
#define curl_easy_reset     (curl_lazy()->easy_reset)
#define curl_easy_strerror  (curl_lazy()->easy_strerror)
#define curl_slist_append   (curl_lazy()->slist_append)
#define curl_slist_free_all (curl_lazy()->slist_free_all)
#define curl_getdate        (curl_lazy()->getdate)
#define curl_free           (curl_lazy()->free)
#define curl_url            (curl_lazy()->url)
#define curl_url_cleanup    (curl_lazy()->url_cleanup)
#define curl_url_set        (curl_lazy()->url_set)
#define curl_url_get        (curl_lazy()->url_get)
#define curl_url_strerror   (curl_lazy()->url_strerror)
#endif

#endif
