#define _GNU_SOURCE
#include "CPosix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mman.h>
#include <unistd.h>

int gpt2kit_anonymous_file(const char *name, const char *directory) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd >= 0) return fd;
    // Some sandboxes refuse memfd_create; fall back to a temporary file.
#endif
    char template[4096];
    int written = snprintf(template, sizeof template, "%s/.%s-XXXXXX", directory, name);
    if (written < 0 || (size_t)written >= sizeof template) { errno = ENAMETOOLONG; return -1; }
#if defined(__linux__)
    int fd2 = mkostemp(template, O_CLOEXEC);
#else
    int fd2 = mkstemp(template);
    if (fd2 >= 0) fcntl(fd2, F_SETFD, FD_CLOEXEC);
#endif
    if (fd2 < 0) return -1;
    unlink(template);
    return fd2;
}

int gpt2kit_pipe_cloexec(int descriptors[2]) {
#if defined(__linux__)
    return pipe2(descriptors, O_CLOEXEC);
#else
    if (pipe(descriptors) != 0) return -1;
    fcntl(descriptors[0], F_SETFD, FD_CLOEXEC);
    fcntl(descriptors[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

int gpt2kit_spawn_add_close_from(void *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, lowest);
#else
    (void)actions;
    (void)lowest;
    return ENOSYS;
#endif
}
