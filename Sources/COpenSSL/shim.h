// The OpenSSL calls QmailTLS, QmailSMTP and QmailDKIM make, through
// wrappers (qossl_NAME for OpenSSL's NAME) that load the system's shared
// libcrypto/libssl at their first call. A program that never speaks TLS or
// checks a signature (most qmail-smtpd and qmail-remote runs: one exec per
// connection) then does not pay for loading and relocating OpenSSL, about
// 1 ms and 140 page faults an exec; and OpenSSL stays a shared library, so
// a security update reaches every program without a rebuild. The programs
// do not link libssl or libcrypto: a call to OpenSSL not made through a
// wrapper fails to link. Macros Swift cannot import are wrapped as static
// inline functions too.
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_MAJOR != 3
#error "the library names below are OpenSSL 3's (libssl.so.3, libcrypto.so.3)"
#endif

enum { QOSSL_CRYPTO = 0, QOSSL_SSL = 1 };

static const char *const qossl_files[2] = {"libcrypto.so.3", "libssl.so.3"};

/// libcrypto or libssl, loaded at the first call; NULL when it cannot be.
static inline void *qossl_library(int library) {
    static void *handles[2];
    void *h = __atomic_load_n(&handles[library], __ATOMIC_ACQUIRE);
    if (!h) {
        h = dlopen(qossl_files[library], RTLD_NOW | RTLD_LOCAL);
        __atomic_store_n(&handles[library], h, __ATOMIC_RELEASE);
    }
    return h;
}

/// NULL when libssl (and the libcrypto it needs) can be loaded; else why
/// not. TLS set-up asks first, so a missing library is a refusal its
/// caller reports (STARTTLS: 454, temporary) rather than the exit below.
static inline const char *qossl_ssl_unavailable(void) {
    if (qossl_library(QOSSL_SSL)) return NULL;
    const char *why = dlerror();
    return why ? why : "unable to load libssl.so.3";
}

/// The address of OpenSSL's `name` in libcrypto or libssl. Without the
/// library (uninstalled since the program started, or a name it lacks) the
/// program says so and exits 111: a temporary failure.
static inline void *qossl_symbol(int library, const char *name) {
    void *h = qossl_library(library);
    void *f = h ? dlsym(h, name) : NULL;
    if (!f) {
        const char *why = dlerror();
        const char *parts[] = {"unable to load OpenSSL's ", name, " from ", qossl_files[library], ": ",
                               why ? why : "not found", "\n"};
        for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            if (write(2, parts[i], strlen(parts[i]))) {}
        }
        _exit(111);
    }
    return f;
}

/// qossl_NAME(params): OpenSSL's NAME, found at the first call. The
/// static assertion keeps each wrapper's prototype OpenSSL's own.
#define QOSSL_FN(library, ret, name, params, args)                                   \
    static inline ret qossl_##name params {                                            \
        static __typeof__(&name) qossl_cached;                                         \
        __typeof__(&name) qossl_f = __atomic_load_n(&qossl_cached, __ATOMIC_ACQUIRE);  \
        if (!qossl_f) {                                                                \
            qossl_f = (__typeof__(&name))qossl_symbol(library, #name);                 \
            __atomic_store_n(&qossl_cached, qossl_f, __ATOMIC_RELEASE);                \
        }                                                                              \
        return qossl_f args;                                                           \
    }                                                                                  \
    _Static_assert(__builtin_types_compatible_p(__typeof__(name), __typeof__(qossl_##name)), \
                   #name " keeps OpenSSL's prototype");

// libssl: TLS sessions (QmailTLS, qmail-remote's STARTTLS)
QOSSL_FN(QOSSL_SSL, const SSL_METHOD *, TLS_server_method, (void), ())
QOSSL_FN(QOSSL_SSL, const SSL_METHOD *, TLS_client_method, (void), ())
QOSSL_FN(QOSSL_SSL, SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *m), (m))
QOSSL_FN(QOSSL_SSL, void, SSL_CTX_free, (SSL_CTX *c), (c))
QOSSL_FN(QOSSL_SSL, long, SSL_CTX_ctrl, (SSL_CTX *c, int cmd, long l, void *p), (c, cmd, l, p))
QOSSL_FN(QOSSL_SSL, uint64_t, SSL_CTX_set_options, (SSL_CTX *c, uint64_t o), (c, o))
QOSSL_FN(QOSSL_SSL, int, SSL_CTX_set_cipher_list, (SSL_CTX *c, const char *s), (c, s))
QOSSL_FN(QOSSL_SSL, int, SSL_CTX_use_certificate_chain_file, (SSL_CTX *c, const char *f), (c, f))
QOSSL_FN(QOSSL_SSL, int, SSL_CTX_use_PrivateKey_file, (SSL_CTX *c, const char *f, int t), (c, f, t))
QOSSL_FN(QOSSL_SSL, int, SSL_CTX_check_private_key, (const SSL_CTX *c), (c))
QOSSL_FN(QOSSL_SSL, int, SSL_CTX_load_verify_locations, (SSL_CTX *c, const char *f, const char *d), (c, f, d))
QOSSL_FN(QOSSL_SSL, void, SSL_CTX_set_verify, (SSL_CTX *c, int m, SSL_verify_cb cb), (c, m, cb))
QOSSL_FN(QOSSL_SSL, SSL *, SSL_new, (SSL_CTX *c), (c))
QOSSL_FN(QOSSL_SSL, void, SSL_free, (SSL *s), (s))
QOSSL_FN(QOSSL_SSL, long, SSL_ctrl, (SSL *s, int cmd, long l, void *p), (s, cmd, l, p))
QOSSL_FN(QOSSL_SSL, int, SSL_set_fd, (SSL *s, int fd), (s, fd))
QOSSL_FN(QOSSL_SSL, int, SSL_set_rfd, (SSL *s, int fd), (s, fd))
QOSSL_FN(QOSSL_SSL, int, SSL_set_wfd, (SSL *s, int fd), (s, fd))
QOSSL_FN(QOSSL_SSL, int, SSL_set1_host, (SSL *s, const char *h), (s, h))
QOSSL_FN(QOSSL_SSL, int, SSL_accept, (SSL *s), (s))
QOSSL_FN(QOSSL_SSL, int, SSL_connect, (SSL *s), (s))
QOSSL_FN(QOSSL_SSL, int, SSL_read, (SSL *s, void *b, int n), (s, b, n))
QOSSL_FN(QOSSL_SSL, int, SSL_write, (SSL *s, const void *b, int n), (s, b, n))
QOSSL_FN(QOSSL_SSL, int, SSL_pending, (const SSL *s), (s))
QOSSL_FN(QOSSL_SSL, int, SSL_shutdown, (SSL *s), (s))
QOSSL_FN(QOSSL_SSL, int, SSL_get_error, (const SSL *s, int r), (s, r))
QOSSL_FN(QOSSL_SSL, long, SSL_get_verify_result, (const SSL *s), (s))
QOSSL_FN(QOSSL_SSL, const char *, SSL_get_version, (const SSL *s), (s))
QOSSL_FN(QOSSL_SSL, const SSL_CIPHER *, SSL_get_current_cipher, (const SSL *s), (s))
QOSSL_FN(QOSSL_SSL, const char *, SSL_CIPHER_get_name, (const SSL_CIPHER *c), (c))

// libcrypto: errors, certificates' verdicts, DKIM's keys and digests
QOSSL_FN(QOSSL_CRYPTO, unsigned long, ERR_get_error, (void), ())
QOSSL_FN(QOSSL_CRYPTO, unsigned long, ERR_peek_error, (void), ())
QOSSL_FN(QOSSL_CRYPTO, void, ERR_clear_error, (void), ())
QOSSL_FN(QOSSL_CRYPTO, void, ERR_error_string_n, (unsigned long e, char *b, size_t n), (e, b, n))
QOSSL_FN(QOSSL_CRYPTO, const char *, X509_verify_cert_error_string, (long n), (n))
QOSSL_FN(QOSSL_CRYPTO, const BIO_METHOD *, BIO_s_mem, (void), ())
QOSSL_FN(QOSSL_CRYPTO, BIO *, BIO_new, (const BIO_METHOD *m), (m))
QOSSL_FN(QOSSL_CRYPTO, BIO *, BIO_new_mem_buf, (const void *b, int n), (b, n))
QOSSL_FN(QOSSL_CRYPTO, int, BIO_free, (BIO *b), (b))
QOSSL_FN(QOSSL_CRYPTO, long, BIO_ctrl, (BIO *b, int cmd, long l, void *p), (b, cmd, l, p))
QOSSL_FN(QOSSL_CRYPTO, const EVP_MD *, EVP_sha256, (void), ())
QOSSL_FN(QOSSL_CRYPTO, EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())
QOSSL_FN(QOSSL_CRYPTO, void, EVP_MD_CTX_free, (EVP_MD_CTX *c), (c))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestInit_ex, (EVP_MD_CTX *c, const EVP_MD *t, ENGINE *e), (c, t, e))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestUpdate, (EVP_MD_CTX *c, const void *d, size_t n), (c, d, n))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestFinal_ex, (EVP_MD_CTX *c, unsigned char *md, unsigned int *n), (c, md, n))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestSignInit,
         (EVP_MD_CTX *c, EVP_PKEY_CTX **pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k), (c, pc, t, e, k))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestSign,
         (EVP_MD_CTX *c, unsigned char *sig, size_t *siglen, const unsigned char *tbs, size_t n), (c, sig, siglen, tbs, n))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestVerifyInit,
         (EVP_MD_CTX *c, EVP_PKEY_CTX **pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k), (c, pc, t, e, k))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_DigestVerify,
         (EVP_MD_CTX *c, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t n), (c, sig, siglen, tbs, n))
QOSSL_FN(QOSSL_CRYPTO, EVP_PKEY_CTX *, EVP_PKEY_CTX_new_id, (int id, ENGINE *e), (id, e))
QOSSL_FN(QOSSL_CRYPTO, void, EVP_PKEY_CTX_free, (EVP_PKEY_CTX *c), (c))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_CTX_set_rsa_keygen_bits, (EVP_PKEY_CTX *c, int bits), (c, bits))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_keygen_init, (EVP_PKEY_CTX *c), (c))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_keygen, (EVP_PKEY_CTX *c, EVP_PKEY **k), (c, k))
QOSSL_FN(QOSSL_CRYPTO, void, EVP_PKEY_free, (EVP_PKEY *k), (k))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_get_id, (const EVP_PKEY *k), (k))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_get_bits, (const EVP_PKEY *k), (k))
QOSSL_FN(QOSSL_CRYPTO, int, EVP_PKEY_get_raw_public_key, (const EVP_PKEY *k, unsigned char *p, size_t *n), (k, p, n))
QOSSL_FN(QOSSL_CRYPTO, EVP_PKEY *, EVP_PKEY_new_raw_public_key,
         (int t, ENGINE *e, const unsigned char *p, size_t n), (t, e, p, n))
QOSSL_FN(QOSSL_CRYPTO, EVP_PKEY *, PEM_read_bio_PrivateKey,
         (BIO *b, EVP_PKEY **k, pem_password_cb *cb, void *u), (b, k, cb, u))
QOSSL_FN(QOSSL_CRYPTO, int, PEM_write_bio_PrivateKey,
         (BIO *b, const EVP_PKEY *k, const EVP_CIPHER *c, const unsigned char *s, int n, pem_password_cb *cb, void *u),
         (b, k, c, s, n, cb, u))
QOSSL_FN(QOSSL_CRYPTO, EVP_PKEY *, d2i_PUBKEY, (EVP_PKEY **k, const unsigned char **p, long n), (k, p, n))
QOSSL_FN(QOSSL_CRYPTO, int, i2d_PUBKEY, (const EVP_PKEY *k, unsigned char **p), (k, p))

// OpenSSL's macros, over the wrappers.
static inline long qtls_set_min_tls12(SSL_CTX *ctx) {
    return qossl_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
}
static inline long qtls_set_session_cache_off(SSL_CTX *ctx) {
    return qossl_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
}
static inline long qtls_set_sni(SSL *ssl, const char *name) {
    return qossl_SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)name);
}
static inline void qtls_set_server_options(SSL_CTX *ctx) {
    qossl_SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
}
static inline long qdkim_bio_mem_data(BIO *b, char **p) {
    return qossl_BIO_ctrl(b, BIO_CTRL_INFO, 0, (char *)p);
}
