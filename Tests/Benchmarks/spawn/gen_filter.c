/* Writes a seccomp BPF program for bubblewrap's --seccomp FD: an allowlist of the same size and
 * shape as privsep's default profile (allowed syscalls, conditional clone/socket/ioctl rules,
 * EPERM otherwise), compiled once, as bwrap expects it. Usage: gen_filter OUT */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return 1;
    int special[] = { SCMP_SYS(clone), SCMP_SYS(ioctl), SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(clone3),
                      SCMP_SYS(ptrace), SCMP_SYS(mount), SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(bpf),
                      SCMP_SYS(keyctl), SCMP_SYS(perf_event_open) };
    int allowed = 0;
    for (int nr = 0; nr < 335 && allowed < 240; nr++) {
        int skip = 0;
        for (size_t i = 0; i < sizeof special / sizeof *special; i++)
            skip |= special[i] == nr;
        if (!skip && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0)
            allowed++;
    }
    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0x7E020080, 0));
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, AF_UNIX));
    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, AF_UNIX));
    for (int bit = 31; bit >= 0; bit--) { /* every 32-bit ioctl cmd but TIOCSTI */
        unsigned long long above = bit == 31 ? 0 : (0xFFFFFFFFULL << (bit + 1)) & 0xFFFFFFFFULL;
        unsigned long long mask = 0xFFFFFFFF00000000ULL | above | (1ULL << bit);
        unsigned long long value = ((unsigned long long)TIOCSTI & above) | (~(unsigned long long)TIOCSTI & (1ULL << bit));
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, mask, value));
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd >= 0 ? seccomp_export_bpf(ctx, fd) : -1;
    seccomp_release(ctx);
    return rc == 0 && close(fd) == 0 ? 0 : 1;
}
