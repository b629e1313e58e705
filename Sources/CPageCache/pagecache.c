#define _GNU_SOURCE
#include "pagecache.h"

#include <fcntl.h>
#include <unistd.h>

int runnel_pagecache_write_back(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
    return sync_file_range(fd, (off_t)offset, (off_t)length,
                           SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
#else
    (void)offset;
    (void)length;
    return fsync(fd);
#endif
}

int runnel_pagecache_drop(int fd, int64_t offset, int64_t length) {
#if defined(POSIX_FADV_DONTNEED)
    return posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
#else
    (void)fd;
    (void)offset;
    (void)length;
    return 0;
#endif
}
