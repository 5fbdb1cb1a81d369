/* Spawn benchmark driver: posix_spawns COUNT helpers one after another, each with a socket at
 * fd 3, and times spawn -> first frame read -> exit reaped. Usage:
 *   spawn_bench COUNT LABEL [--error-fd] -- ARGV...
 * --error-fd adds a CLOEXEC error pipe at fd 4 and waits for its EOF, as the broker does.
 * Prints "LABEL total_ms per_helper_ms". Exits non-zero if any helper fails to deliver. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int one(char **argv, int use_error_fd, const char *fd9)
{
    int sv[2], ep[2] = { -1, -1 };
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (use_error_fd && pipe2(ep, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    if (use_error_fd)
        posix_spawn_file_actions_adddup2(&fa, ep[1], 4);
    if (fd9)
        posix_spawn_file_actions_addopen(&fa, 9, fd9, O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (use_error_fd)
        close(ep[1]);
    if (rc != 0)
        return -1;
    unsigned char hdr[4], body[256];
    int ok = read_full(sv[0], hdr, 4) == 0;
    unsigned int n = (unsigned)hdr[0] << 24 | (unsigned)hdr[1] << 16 | (unsigned)hdr[2] << 8 | hdr[3];
    ok = ok && n <= sizeof body && read_full(sv[0], body, n) == 0;
    if (use_error_fd) {
        char b[256];
        ok = ok && read(ep[0], b, sizeof b) == 0; /* EOF, nothing written: the helper was executed */
        close(ep[0]);
    }
    close(sv[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

#define MAX_CMDS 8

struct cmd {
    const char *label;
    int use_error_fd;
    const char *fd9; /* --fd9 PATH: opened read-only at fd 9 (bwrap --seccomp 9) */
    char **argv;
    double total_ms;
};

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: spawn_bench COUNT LABEL [--error-fd] -- ARGV... [:: LABEL [--error-fd] -- ARGV...]...\n");
        return 2;
    }
    int count = atoi(argv[1]);
    struct cmd cmds[MAX_CMDS];
    int ncmds = 0;
    int i = 2;
    while (i < argc && ncmds < MAX_CMDS) {
        struct cmd *c = &cmds[ncmds++];
        c->label = argv[i++];
        c->use_error_fd = 0;
        c->fd9 = NULL;
        c->total_ms = 0;
        if (i < argc && strcmp(argv[i], "--error-fd") == 0) {
            c->use_error_fd = 1;
            i++;
        }
        if (i + 1 < argc && strcmp(argv[i], "--fd9") == 0) {
            c->fd9 = argv[i + 1];
            i += 2;
        }
        if (i >= argc || strcmp(argv[i], "--") != 0)
            return 2;
        c->argv = argv + ++i;
        while (i < argc && strcmp(argv[i], "::") != 0)
            i++;
        if (i < argc)
            argv[i++] = NULL; /* ends this command's argv */
    }
    for (int k = 0; k < ncmds; k++) { /* warm-up, and a check that each command works */
        if (one(cmds[k].argv, cmds[k].use_error_fd, cmds[k].fd9) != 0) {
            fprintf(stderr, "%s: the helper did not deliver its first frame\n", cmds[k].label);
            return 1;
        }
    }
    /* Interleaved, so a change in machine load hits every command alike. */
    for (int n = 0; n < count; n++) {
        for (int k = 0; k < ncmds; k++) {
            double start = now_ms();
            if (one(cmds[k].argv, cmds[k].use_error_fd, cmds[k].fd9) != 0) {
                fprintf(stderr, "%s: helper %d failed\n", cmds[k].label, n);
                return 1;
            }
            cmds[k].total_ms += now_ms() - start;
        }
    }
    for (int k = 0; k < ncmds; k++)
        printf("%s %.1f %.3f\n", cmds[k].label, cmds[k].total_ms, cmds[k].total_ms / count);
    return 0;
}
