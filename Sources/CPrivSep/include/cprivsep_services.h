/* Broker services shims: openat2(2) has no glibc wrapper on Debian 12, and O_PATH is only
 * declared under _GNU_SOURCE. */
#ifndef CPRIVSEP_SERVICES_H
#define CPRIVSEP_SERVICES_H

#include <stdint.h>

/* The RESOLVE_* flags of openat2(2), as in <linux/openat2.h>. */
#define CPRIVSEP_RESOLVE_NO_XDEV	0x01u
#define CPRIVSEP_RESOLVE_NO_MAGICLINKS	0x02u
#define CPRIVSEP_RESOLVE_NO_SYMLINKS	0x04u
#define CPRIVSEP_RESOLVE_BENEATH	0x08u

/* openat2(dirfd, path, {flags, mode, resolve}); -1 and errno on failure. */
int cprivsep_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
/* open(path, O_PATH | O_DIRECTORY | O_CLOEXEC): a handle on a directory that grants no reading. */
int cprivsep_open_directory_path(const char *path);

/*
 * getaddrinfo with a bound on the wait (getaddrinfo_a + gai_suspend): the broker's loop is
 * single-threaded and must not hang on a slow resolver. Returns 0 and *result (free it with
 * freeaddrinfo), an EAI_* code, or one of the two codes below. A lookup that times out and
 * cannot be cancelled is kept (at most CPRIVSEP_GAI_ABANDONED_MAX) and freed once glibc's
 * thread finishes it.
 */
#define CPRIVSEP_GAI_TIMEOUT		(-1001)	/* timeout_ms passed */
#define CPRIVSEP_GAI_BUSY		(-1002)	/* too many timed-out lookups still running */
#define CPRIVSEP_GAI_ABANDONED_MAX	8
#include <netdb.h>
int cprivsep_getaddrinfo_bounded(const char *name, int family, int timeout_ms, struct addrinfo **result);

#endif
