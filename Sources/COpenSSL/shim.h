// The OpenSSL calls QmailTLS uses. Macros Swift cannot import are wrapped
// as static inline functions.
#include <openssl/ssl.h>
#include <openssl/err.h>

static inline long qtls_set_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long qtls_set_session_cache_off(SSL_CTX *ctx) {
    return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}
static inline long qtls_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline void qtls_set_server_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
}

// DKIM (QmailDKIM): keys, signatures and digests through EVP.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static inline long qdkim_bio_mem_data(BIO *b, char **p) {
    return BIO_get_mem_data(b, p);
}
