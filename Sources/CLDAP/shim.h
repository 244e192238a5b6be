// OpenLDAP's client library (libldap, liblber): search, StartTLS, RFC 4515 escaping.
#define LDAP_DEPRECATED 0
#include <ldap.h>
