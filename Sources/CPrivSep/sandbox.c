/* Sandbox shims; see cprivsep_sandbox.h for why each exists. */
#define _GNU_SOURCE
#include "cprivsep_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

int cps_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL); }
int cps_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL); }
int cps_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0UL, 0UL, 0UL, 0UL); }
int cps_capbset_drop(int cap) { return prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL); }

int cps_ambient_clear_all(void)
{
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL);
}

int cps_cap_last_cap(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 63;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 63;
    buf[n] = '\0';
    int v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    return (v > 0 && v < 64) ? v : 63;
}

int cps_capset_clear(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &hdr, data);
}

int cps_capset_keep(uint64_t keep)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].permitted = data[0].effective = (uint32_t)keep;
    data[1].permitted = data[1].effective = (uint32_t)(keep >> 32);
    return (int)syscall(SYS_capset, &hdr, data);
}

int cps_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int cps_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(__NR_close_range, first, last, flags);
}

pid_t cps_fork(void) { return fork(); }

int cps_unshare(int flags) { return unshare(flags); }
int cps_setresuid(uid_t r, uid_t e, uid_t s) { return setresuid(r, e, s); }
int cps_setresgid(gid_t r, gid_t e, gid_t s) { return setresgid(r, e, s); }
int cps_getresuid(uid_t *r, uid_t *e, uid_t *s) { return getresuid(r, e, s); }
int cps_getresgid(gid_t *r, gid_t *e, gid_t *s) { return getresgid(r, e, s); }
int cps_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cps_loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        goto fail;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        goto fail;
    close(fd);
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Mirrors of the uapi structs at their newest layout; the size passed selects the ABI. */
struct cps_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};
struct cps_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
struct cps_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

int cps_landlock_abi(void)
{
    long v = syscall(__NR_landlock_create_ruleset, NULL, 0, 1U /* VERSION */);
    return v < 0 ? 0 : (int)v;
}

int cps_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, int abi)
{
    struct cps_ruleset_attr attr = { handled_fs, handled_net, scoped };
    size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
    return (int)syscall(__NR_landlock_create_ruleset, &attr, size, 0U);
}

int cps_landlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed)
{
    struct cps_path_beneath_attr attr = { allowed, parent_fd };
    return (int)syscall(__NR_landlock_add_rule, ruleset_fd, 1 /* PATH_BENEATH */, &attr, 0U);
}

int cps_landlock_add_net_rule(int ruleset_fd, uint64_t port, uint64_t allowed)
{
    struct cps_net_port_attr attr = { allowed, port };
    return (int)syscall(__NR_landlock_add_rule, ruleset_fd, 2 /* NET_PORT */, &attr, 0U);
}

int cps_landlock_restrict_self(int ruleset_fd)
{
    return (int)syscall(__NR_landlock_restrict_self, ruleset_fd, 0U);
}

int cps_seccomp_load_program(const void *instructions, unsigned short count)
{
    struct sock_fprog prog = { .len = count, .filter = (struct sock_filter *)(uintptr_t)instructions };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, &prog);
}

/* Each probe passes arguments the kernel rejects before doing anything, so ENOSYS is the only
 * answer that means "absent". */
int cps_probe_openat2(void)
{
    long r = syscall(__NR_openat2, -1, NULL, 0, 0);
    return (r < 0 && errno == ENOSYS) ? 0 : 1;
}

int cps_probe_close_range(void)
{
    long r = syscall(__NR_close_range, 2U, 1U, 0U); /* first > last: EINVAL when supported */
    return (r < 0 && errno == ENOSYS) ? 0 : 1;
}

int cps_probe_pidfd_open(void)
{
    long r = syscall(__NR_pidfd_open, getpid(), 0U);
    if (r >= 0) {
        close((int)r);
        return 1;
    }
    return errno == ENOSYS ? 0 : 1;
}

int cps_probe_seccomp_filter(void)
{
    /* Asking for an action that does not exist: EINVAL when seccomp filters are built in. */
    long r = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0U, NULL);
    if (r < 0 && errno == EFAULT)
        return 1;
    return (r < 0 && (errno == ENOSYS)) ? 0 : 1;
}

int cps_pidfd_open(pid_t pid) { return (int)syscall(__NR_pidfd_open, pid, 0U); }
