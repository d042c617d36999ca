/*
 * The crash-point shim of `ember crash-points`: preloaded into a child
 * process (LD_PRELOAD), it counts every call by which the process changes
 * a file or a directory, in the order the calls are made, across all
 * threads, and kills the process with SIGKILL right before the Nth one.
 *
 * Counted ("points"): write, pwrite, writev, pwritev on regular files and
 * directories (not on pipes or terminals: the child's acknowledgements on
 * stdout are not points), fsync, fdatasync, sync_file_range, ftruncate,
 * fallocate, copy_file_range, sendfile, open/openat with O_CREAT or
 * O_TRUNC, creat, rename, renameat, renameat2, link, linkat, symlink,
 * unlink, unlinkat, mkdir, mkdirat, rmdir.
 *
 * Environment:
 *   EMBER_KILL_AT=N     kill the process before its Nth point (0 or unset:
 *                       never)
 *   EMBER_KILL_TRACE=F  append one line per point to F: "N kind path"
 *
 * Once point N is reached, every thread that reaches a later point kills
 * the process too and never makes its call: nothing after N is done,
 * except a call another thread was already inside (as in a real crash).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long kill_at = -2; /* -2: not read yet; 0: never */
static long counter = 0;
static int trace_fd = -1;

#define REAL(name, ret, ...)                                              \
    static ret (*real_##name)(__VA_ARGS__);                               \
    static void load_##name(void) {                                       \
        if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name);          \
    }

REAL(write, ssize_t, int, const void *, size_t)
REAL(pwrite, ssize_t, int, const void *, size_t, off_t)
REAL(pwrite64, ssize_t, int, const void *, size_t, off_t)
REAL(writev, ssize_t, int, const struct iovec *, int)
REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t)
REAL(pwritev64, ssize_t, int, const struct iovec *, int, off_t)
REAL(fsync, int, int)
REAL(fdatasync, int, int)
REAL(sync_file_range, int, int, off_t, off_t, unsigned int)
REAL(ftruncate, int, int, off_t)
REAL(ftruncate64, int, int, off_t)
REAL(fallocate, int, int, int, off_t, off_t)
REAL(fallocate64, int, int, int, off_t, off_t)
REAL(copy_file_range, ssize_t, int, off_t *, int, off_t *, size_t, unsigned int)
REAL(sendfile, ssize_t, int, int, off_t *, size_t)
REAL(sendfile64, ssize_t, int, int, off_t *, size_t)
REAL(open, int, const char *, int, ...)
REAL(open64, int, const char *, int, ...)
REAL(openat, int, int, const char *, int, ...)
REAL(openat64, int, int, const char *, int, ...)
REAL(creat, int, const char *, mode_t)
REAL(creat64, int, const char *, mode_t)
REAL(rename, int, const char *, const char *)
REAL(renameat, int, int, const char *, int, const char *)
REAL(renameat2, int, int, const char *, int, const char *, unsigned int)
REAL(link, int, const char *, const char *)
REAL(linkat, int, int, const char *, int, const char *, int)
REAL(symlink, int, const char *, const char *)
REAL(unlink, int, const char *)
REAL(unlinkat, int, int, const char *, int)
REAL(mkdir, int, const char *, mode_t)
REAL(mkdirat, int, int, const char *, mode_t)
REAL(rmdir, int, const char *)

static void setup(void) {
    if (__atomic_load_n(&kill_at, __ATOMIC_ACQUIRE) != -2) return;
    load_write();
    const char *at = getenv("EMBER_KILL_AT");
    long n = at ? atol(at) : 0;
    const char *trace = getenv("EMBER_KILL_TRACE");
    if (trace && *trace) {
        load_open();
        trace_fd = real_open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    __atomic_store_n(&kill_at, n, __ATOMIC_RELEASE);
}

/* Whether a call on `fd` changes a file (a pipe or a terminal does not). */
static int is_file(int fd) {
    struct stat st;
    if (fd == trace_fd || fstat(fd, &st) != 0) return 0;
    return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
}

static void point(const char *kind, int fd, const char *path) {
    setup();
    long n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
    if (trace_fd >= 0) {
        char link[64], target[4096], line[4300];
        if (!path && fd >= 0) {
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t len = readlink(link, target, sizeof target - 1);
            target[len > 0 ? len : 0] = 0;
            path = target;
        }
        int len = snprintf(line, sizeof line, "%ld %s %s\n", n, kind, path ? path : "");
        if (len > 0) real_write(trace_fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    }
    long at = __atomic_load_n(&kill_at, __ATOMIC_ACQUIRE);
    if (at > 0 && n >= at) {
        kill(getpid(), SIGKILL);
        for (;;) pause();
    }
}

#define FD_POINT(kind, fd) do { if (is_file(fd)) point(kind, fd, NULL); } while (0)

ssize_t write(int fd, const void *buf, size_t count) {
    load_write();
    FD_POINT("write", fd);
    return real_write(fd, buf, count);
}
ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
    load_pwrite();
    FD_POINT("write", fd);
    return real_pwrite(fd, buf, count, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
    load_pwrite64();
    FD_POINT("write", fd);
    return real_pwrite64(fd, buf, count, off);
}
ssize_t writev(int fd, const struct iovec *iov, int n) {
    load_writev();
    FD_POINT("write", fd);
    return real_writev(fd, iov, n);
}
ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off) {
    load_pwritev();
    FD_POINT("write", fd);
    return real_pwritev(fd, iov, n, off);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off) {
    load_pwritev64();
    FD_POINT("write", fd);
    return real_pwritev64(fd, iov, n, off);
}
int fsync(int fd) {
    load_fsync();
    FD_POINT("fsync", fd);
    return real_fsync(fd);
}
int fdatasync(int fd) {
    load_fdatasync();
    FD_POINT("fsync", fd);
    return real_fdatasync(fd);
}
int sync_file_range(int fd, off_t off, off_t n, unsigned int flags) {
    load_sync_file_range();
    FD_POINT("fsync", fd);
    return real_sync_file_range(fd, off, n, flags);
}
int ftruncate(int fd, off_t len) {
    load_ftruncate();
    FD_POINT("truncate", fd);
    return real_ftruncate(fd, len);
}
int ftruncate64(int fd, off_t len) {
    load_ftruncate64();
    FD_POINT("truncate", fd);
    return real_ftruncate64(fd, len);
}
int fallocate(int fd, int mode, off_t off, off_t len) {
    load_fallocate();
    FD_POINT("allocate", fd);
    return real_fallocate(fd, mode, off, len);
}
int fallocate64(int fd, int mode, off_t off, off_t len) {
    load_fallocate64();
    FD_POINT("allocate", fd);
    return real_fallocate64(fd, mode, off, len);
}
ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags) {
    load_copy_file_range();
    FD_POINT("write", out);
    return real_copy_file_range(in, in_off, out, out_off, len, flags);
}
ssize_t sendfile(int out, int in, off_t *off, size_t count) {
    load_sendfile();
    FD_POINT("write", out);
    return real_sendfile(out, in, off, count);
}
ssize_t sendfile64(int out, int in, off_t *off, size_t count) {
    load_sendfile64();
    FD_POINT("write", out);
    return real_sendfile64(out, in, off, count);
}

/* Opening counts only when it may create or empty a file. */
static int creates(int flags) { return (flags & (O_CREAT | O_TRUNC)) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

static mode_t mode_of(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    load_open();
    if (creates(flags)) point("create", -1, path);
    return real_open(path, flags, mode);
}
int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    load_open64();
    if (creates(flags)) point("create", -1, path);
    return real_open64(path, flags, mode);
}
int openat(int dir, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    load_openat();
    if (creates(flags)) point("create", -1, path);
    return real_openat(dir, path, flags, mode);
}
int openat64(int dir, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_of(flags, ap);
    va_end(ap);
    load_openat64();
    if (creates(flags)) point("create", -1, path);
    return real_openat64(dir, path, flags, mode);
}
int creat(const char *path, mode_t mode) {
    load_creat();
    point("create", -1, path);
    return real_creat(path, mode);
}
int creat64(const char *path, mode_t mode) {
    load_creat64();
    point("create", -1, path);
    return real_creat64(path, mode);
}
int rename(const char *from, const char *to) {
    load_rename();
    point("rename", -1, to);
    return real_rename(from, to);
}
int renameat(int a, const char *from, int b, const char *to) {
    load_renameat();
    point("rename", -1, to);
    return real_renameat(a, from, b, to);
}
int renameat2(int a, const char *from, int b, const char *to, unsigned int flags) {
    load_renameat2();
    point("rename", -1, to);
    return real_renameat2(a, from, b, to, flags);
}
int link(const char *from, const char *to) {
    load_link();
    point("link", -1, to);
    return real_link(from, to);
}
int linkat(int a, const char *from, int b, const char *to, int flags) {
    load_linkat();
    point("link", -1, to);
    return real_linkat(a, from, b, to, flags);
}
int symlink(const char *target, const char *path) {
    load_symlink();
    point("link", -1, path);
    return real_symlink(target, path);
}
int unlink(const char *path) {
    load_unlink();
    point("remove", -1, path);
    return real_unlink(path);
}
int unlinkat(int dir, const char *path, int flags) {
    load_unlinkat();
    point("remove", -1, path);
    return real_unlinkat(dir, path, flags);
}
int mkdir(const char *path, mode_t mode) {
    load_mkdir();
    point("mkdir", -1, path);
    return real_mkdir(path, mode);
}
int mkdirat(int dir, const char *path, mode_t mode) {
    load_mkdirat();
    point("mkdir", -1, path);
    return real_mkdirat(dir, path, mode);
}
int rmdir(const char *path) {
    load_rmdir();
    point("remove", -1, path);
    return real_rmdir(path);
}
