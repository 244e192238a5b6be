// sync_file_range(2), as glibc defines it (off64_t is int64_t on Linux's
// 64-bit ABIs), and its flags.
#include <stdint.h>

int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);

enum {
    CLINUX_SYNC_FILE_RANGE_WAIT_BEFORE = 1,
    CLINUX_SYNC_FILE_RANGE_WRITE = 2,
    CLINUX_SYNC_FILE_RANGE_WAIT_AFTER = 4,
};
