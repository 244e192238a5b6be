// MariaDB Connector/C (libmariadb): prepared statements over TCP or a unix socket, TLS.
#include <mysql.h>
