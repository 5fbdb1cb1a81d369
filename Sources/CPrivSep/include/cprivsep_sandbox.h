/* Sandbox shims: only the calls Swift cannot make directly (variadic prctl/ioctl, raw syscalls
 * glibc does not wrap, kernel structs whose size depends on the ABI). Every function returns
 * -1 with errno set on failure, like the syscall it wraps. */
#ifndef CPRIVSEP_SANDBOX_H
#define CPRIVSEP_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

/* prctl(2) is variadic. */
int cps_set_pdeathsig(int sig);
int cps_set_no_new_privs(void);
int cps_get_no_new_privs(void);
int cps_capbset_drop(int cap);
int cps_ambient_clear_all(void);
/* Highest capability number the kernel knows (from /proc/sys/kernel/cap_last_cap, else 63). */
int cps_cap_last_cap(void);
/* capset(2) with every set empty, for the calling thread. */
int cps_capset_clear(void);
/* capset(2): permitted = effective = `keep` (a mask of capability numbers), inheritable empty. */
int cps_capset_keep(uint64_t keep);

int cps_pivot_root(const char *new_root, const char *put_old);
int cps_close_range(unsigned int first, unsigned int last, unsigned int flags);

/* GNU-only (hidden from Swift's Glibc module without _GNU_SOURCE). */
int cps_unshare(int flags);
int cps_setresuid(uid_t r, uid_t e, uid_t s);
int cps_setresgid(gid_t r, gid_t e, gid_t s);
int cps_getresuid(uid_t *r, uid_t *e, uid_t *s);
int cps_getresgid(gid_t *r, gid_t *e, gid_t *s);
/* pipe2(fds, O_CLOEXEC): atomic, so a concurrent spawn in another thread never inherits it. */
int cps_pipe_cloexec(int fds[2]);

/* fork(2): the launcher is single-threaded, so fork is safe there (and only there). */
pid_t cps_fork(void);

/* Brings "lo" up in the current network namespace (ioctl SIOCSIFFLAGS is variadic). */
int cps_loopback_up(void);

/* Landlock. abi: value of cps_landlock_abi(); the attr size passed to the kernel follows it. */
int cps_landlock_abi(void);
int cps_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, int abi);
int cps_landlock_add_path_rule(int ruleset_fd, int parent_fd, uint64_t allowed);
int cps_landlock_add_net_rule(int ruleset_fd, uint64_t port, uint64_t allowed);
int cps_landlock_restrict_self(int ruleset_fd);

/* Landlock rights, defined here because Debian 12's uapi header predates ABI 4. */
#define CPS_LL_FS_EXECUTE      (1ULL << 0)
#define CPS_LL_FS_WRITE_FILE   (1ULL << 1)
#define CPS_LL_FS_READ_FILE    (1ULL << 2)
#define CPS_LL_FS_READ_DIR     (1ULL << 3)
#define CPS_LL_FS_REMOVE_DIR   (1ULL << 4)
#define CPS_LL_FS_REMOVE_FILE  (1ULL << 5)
#define CPS_LL_FS_MAKE_CHAR    (1ULL << 6)
#define CPS_LL_FS_MAKE_DIR     (1ULL << 7)
#define CPS_LL_FS_MAKE_REG     (1ULL << 8)
#define CPS_LL_FS_MAKE_SOCK    (1ULL << 9)
#define CPS_LL_FS_MAKE_FIFO    (1ULL << 10)
#define CPS_LL_FS_MAKE_BLOCK   (1ULL << 11)
#define CPS_LL_FS_MAKE_SYM     (1ULL << 12)
#define CPS_LL_FS_REFER        (1ULL << 13) /* ABI 2 */
#define CPS_LL_FS_TRUNCATE     (1ULL << 14) /* ABI 3 */
#define CPS_LL_FS_IOCTL_DEV    (1ULL << 15) /* ABI 5 */
#define CPS_LL_NET_BIND_TCP    (1ULL << 0)  /* ABI 4 */
#define CPS_LL_NET_CONNECT_TCP (1ULL << 1)  /* ABI 4 */
#define CPS_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define CPS_LL_SCOPE_SIGNAL    (1ULL << 1)  /* ABI 6 */

/* seccomp(SECCOMP_SET_MODE_FILTER) of a compiled classic-BPF program (count instructions of
 * 8 bytes each), for a filter the broker compiled once with libseccomp. */
int cps_seccomp_load_program(const void *instructions, unsigned short count);

/* Kernel feature probes for `privsep doctor`: 1 supported, 0 not (ENOSYS), -1 unknown. */
int cps_probe_openat2(void);
int cps_probe_close_range(void);
int cps_probe_pidfd_open(void);
int cps_probe_seccomp_filter(void);
int cps_pidfd_open(pid_t pid);

#endif
