#define _GNU_SOURCE
#include "cprivsep_services.h"
#include <fcntl.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(CPRIVSEP_RESOLVE_NO_XDEV == RESOLVE_NO_XDEV, "RESOLVE_NO_XDEV");
_Static_assert(CPRIVSEP_RESOLVE_NO_MAGICLINKS == RESOLVE_NO_MAGICLINKS, "RESOLVE_NO_MAGICLINKS");
_Static_assert(CPRIVSEP_RESOLVE_NO_SYMLINKS == RESOLVE_NO_SYMLINKS, "RESOLVE_NO_SYMLINKS");
_Static_assert(CPRIVSEP_RESOLVE_BENEATH == RESOLVE_BENEATH, "RESOLVE_BENEATH");

int cprivsep_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = flags;
	/* The kernel refuses a mode without O_CREAT or O_TMPFILE. */
	how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
	how.resolve = resolve;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int cprivsep_open_directory_path(const char *path)
{
	return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* One asynchronous lookup: everything glibc's resolver thread may still touch. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char name[256];
};

/* Timed-out lookups glibc is still running; only the broker's one thread touches this. */
static struct lookup *abandoned[CPRIVSEP_GAI_ABANDONED_MAX];

static void reap_abandoned(void)
{
	size_t i;

	for (i = 0; i < CPRIVSEP_GAI_ABANDONED_MAX; i++) {
		if (abandoned[i] == NULL || gai_error(&abandoned[i]->cb) == EAI_INPROGRESS)
			continue;
		if (abandoned[i]->cb.ar_result != NULL)
			freeaddrinfo(abandoned[i]->cb.ar_result);
		free(abandoned[i]);
		abandoned[i] = NULL;
	}
}

static long long monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int cprivsep_getaddrinfo_bounded(const char *name, int family, int timeout_ms, struct addrinfo **result)
{
	struct gaicb *list[1];
	struct lookup *lookup;
	long long deadline = monotonic_ms() + timeout_ms;
	size_t slot;
	int rc;

	*result = NULL;
	reap_abandoned();
	for (slot = 0; slot < CPRIVSEP_GAI_ABANDONED_MAX && abandoned[slot] != NULL; slot++)
		;
	if (slot == CPRIVSEP_GAI_ABANDONED_MAX)
		return CPRIVSEP_GAI_BUSY;
	if (strlen(name) >= sizeof(lookup->name))
		return EAI_NONAME;
	lookup = calloc(1, sizeof(*lookup));
	if (lookup == NULL)
		return EAI_MEMORY;
	strcpy(lookup->name, name);
	lookup->hints.ai_family = family;
	lookup->hints.ai_socktype = SOCK_STREAM;
	lookup->cb.ar_name = lookup->name;
	lookup->cb.ar_request = &lookup->hints;
	list[0] = &lookup->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0) {
		free(lookup);
		return rc;
	}
	while (gai_error(&lookup->cb) == EAI_INPROGRESS) {
		long long left = deadline - monotonic_ms();
		struct timespec wait;
		if (left <= 0)
			break;
		wait.tv_sec = left / 1000;
		wait.tv_nsec = (left % 1000) * 1000000;
		gai_suspend((const struct gaicb *const *)list, 1, &wait);
	}
	rc = gai_error(&lookup->cb);
	if (rc == EAI_INPROGRESS) {
		if (gai_cancel(&lookup->cb) == EAI_CANCELED)
			free(lookup);
		else
			abandoned[slot] = lookup;
		return CPRIVSEP_GAI_TIMEOUT;
	}
	*result = lookup->cb.ar_result;
	free(lookup);
	return rc;
}
