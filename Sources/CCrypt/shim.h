// libxcrypt (crypt_rn, crypt_gensalt_rn) and the shadow password database.
#include <crypt.h>
#include <shadow.h>
#include <grp.h>
#include <string.h>
