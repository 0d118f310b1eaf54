/*
 * latency_shim.c -- an LD_PRELOAD model of a latency-bound network file system (EFS/NFS) for the benchmark.
 *
 * Every metadata call on a path under one of the configured prefixes is delayed by a fixed latency with
 * nanosleep (a sleep, not a busy wait: parallel processes overlap their latencies as parallel NFS round trips
 * do) and counted per kind.  Counts are kept in a small memory-mapped file per process, so they are complete
 * however the process ends (exit, _exit, a signal).  See bench/README.md, "Latency model", for what counts.
 *
 * Environment (read at load time, inherited through fork, vfork and exec):
 *   EFSB_LATENCY_PREFIXES  colon-separated absolute, canonical paths (a path counts if it equals a prefix or
 *                          lies below it, after lexical normalisation of ".", ".." and "//")
 *   EFSB_LATENCY_US        delay per counted call, microseconds (default 0: count only)
 *   EFSB_LATENCY_COUNTS    directory for the per-process count files (must not be under a prefix)
 *
 * Build: cc -O2 -shared -fPIC -o latency_shim.so latency_shim.c -ldl -lpthread   (glibc >= 2.33, Linux)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

/* ------------------------------------------------------------------------------------------------ kinds */

enum kind {
    K_OPEN, K_STAT, K_GETDENTS, K_READLINK, K_ACCESS, K_STATFS, K_CHDIR, K_MKDIR, K_RMDIR, K_UNLINK,
    K_LINK, K_SYMLINK, K_RENAME, K_MKNOD, K_CHMOD, K_CHOWN, K_UTIMES, NKINDS
};
static const char *const KIND_NAMES =
    "open,stat,getdents,readlink,access,statfs,chdir,mkdir,rmdir,unlink,link,symlink,rename,mknod,chmod,chown,utimes";

#define HEADER_SIZE 512
struct counts_file {
    char header[HEADER_SIZE];  /* text: magic, pid, ppid, exe, kinds (padded with spaces) */
    uint64_t count[NKINDS];    /* counted (and delayed) calls per kind */
    uint64_t slept_ns;         /* total time slept */
    uint64_t unresolved;       /* names relative to a directory fd the shim did not see opened (not counted) */
};

/* ------------------------------------------------------------------------------------------------ state */

#define MAX_PREFIXES 16
#define FD_MAX 65536
#define DIRBUF 32768           /* glibc's readdir buffer for ordinary directories: same getdents64 calls */

static int initialised;
static pid_t owner_pid;        /* the process whose tables these are (a vfork child shares memory: it skips) */
static char *prefixes[MAX_PREFIXES];
static size_t prefix_len[MAX_PREFIXES];
static int nprefixes;
static long latency_ns;
static char count_dir[PATH_MAX];
static char cwd[PATH_MAX];
static struct counts_file *counts;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *fd_path[FD_MAX];  /* normalised absolute path of each fd opened through a hooked call */

struct dirstate {
    DIR *dir;
    int len, pos;
    char buf[DIRBUF] __attribute__((aligned(8)));
};
static struct dirstate *dir_state[FD_MAX];   /* by dirfd(), for directory streams under a prefix */

/* the real functions, resolved lazily */
#define REAL(ret, name, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

/* ------------------------------------------------------------------------------------------------ paths */

/* Lexically normalise an absolute path in place: collapse "//", "." and "..". */
static void normalise(char *p)
{
    char *out = p, *in = p;
    while (*in) {
        while (*in == '/') in++;
        char *seg = in;
        while (*in && *in != '/') in++;
        size_t n = (size_t)(in - seg);
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, n);
        out += n;
    }
    if (out == p) *out++ = '/';
    *out = '\0';
}

static int in_owner(void);

/* The path of a directory fd this process did not open through a hooked call: one inherited over exec (the engine
   hands its source lister the part's directory fd), as the kernel names it; looked up once, then kept in the fd
   table like any other.  NULL for what has no absolute path (a pipe, a socket, a deleted directory). */
static const char *inherited_path(int fd)
{
    REAL(ssize_t, readlink, const char *, char *, size_t);
    char link[64], target[PATH_MAX];
    if (!in_owner()) return NULL;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = real_readlink(link, target, sizeof target - 1);
    if (n <= 0 || target[0] != '/') return NULL;
    target[n] = '\0';
    if (strstr(target, " (deleted)")) return NULL;
    normalise(target);
    pthread_mutex_lock(&lock);
    if (!fd_path[fd]) fd_path[fd] = strdup(target);
    const char *known = fd_path[fd];
    pthread_mutex_unlock(&lock);
    return known;
}

/* /proc/self/fd/N[/PATH] (normalised, in out; the engine names rsync's sources /proc/self/fd/N/./PATH in
   rsync.run_listed, and rsync opens /proc/self/fd/N itself for each file it sends): the kernel follows the magic
   link to what fd N refers to, so the directory the shim knows fd N as (or looks up), and PATH below it. A call
   that does not follow the link itself (follow_last 0: readlink) reads procfs's link, not the directory, and
   stays as it is, as in latency.strace_counts. 0 if the rewritten path would not fit. */
static int magic_fd_link(char *out, int follow_last)
{
    static const char magic[] = "/proc/self/fd/";
    const size_t m = sizeof magic - 1;
    if (strncmp(out, magic, m) != 0) return 1;
    char *end;
    long fd = strtol(out + m, &end, 10);
    if (end == out + m || (*end != '/' && !(*end == '\0' && follow_last)) || fd < 0 || fd >= FD_MAX) return 1;
    const char *base = fd_path[fd] ? fd_path[fd] : inherited_path((int)fd);
    if (!base) return 1;
    char target[PATH_MAX];
    if (snprintf(target, sizeof target, "%s%s", base, end) >= (int)sizeof target) return 0;
    strcpy(out, target);
    normalise(out);
    return 1;
}

/* The absolute path that (dirfd, path) names, in out; 0 if it cannot be known. follow_last: whether the call
   follows a last component that is a /proc/self/fd link (every call the shim counts but readlink). */
static int resolve_as(int dirfd, const char *path, char *out, int follow_last)
{
    const char *base;
    if (!path) path = "";
    if (path[0] == '/') {
        base = "";
    } else if (dirfd == AT_FDCWD) {
        base = cwd;
    } else if (dirfd >= 0 && dirfd < FD_MAX && fd_path[dirfd]) {
        base = fd_path[dirfd];
    } else if (dirfd >= 0 && dirfd < FD_MAX && (base = inherited_path(dirfd)) != NULL) {
        /* base set */
    } else {
        return 0;
    }
    if (snprintf(out, PATH_MAX, "%s/%s", base, path) >= PATH_MAX) return 0;
    normalise(out);
    return magic_fd_link(out, follow_last);
}

static int resolve(int dirfd, const char *path, char *out) { return resolve_as(dirfd, path, out, 1); }

static int under(const char *abs)
{
    for (int i = 0; i < nprefixes; i++) {
        size_t n = prefix_len[i];
        if (strncmp(abs, prefixes[i], n) == 0 && (abs[n] == '\0' || abs[n] == '/' || n == 1))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ setup */

static void after_fork_child(void)
{
    owner_pid = getpid();
    counts = NULL;              /* the parent's file stays the parent's: a new one on the first count */
    pthread_mutex_init(&lock, NULL);
}

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&lock); }

static void init(void)
{
    if (initialised) return;
    initialised = 1;
    owner_pid = getpid();
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    const char *us = getenv("EFSB_LATENCY_US");
    latency_ns = us ? atol(us) * 1000L : 0;
    const char *dir = getenv("EFSB_LATENCY_COUNTS");
    if (dir) snprintf(count_dir, sizeof count_dir, "%s", dir);
    const char *list = getenv("EFSB_LATENCY_PREFIXES");
    if (list) {
        char *copy = strdup(list), *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok && nprefixes < MAX_PREFIXES;
             tok = strtok_r(NULL, ":", &save)) {
            if (tok[0] != '/') continue;
            char *p = malloc(strlen(tok) + 2);
            strcpy(p, tok);
            normalise(p);
            prefixes[nprefixes] = p;
            prefix_len[nprefixes++] = strlen(p);
        }
    }
    if (latency_ns > 0) prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);   /* sleep 1 ms, not 1.05 */
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

__attribute__((constructor)) static void shim_load(void) { init(); }

static int in_owner(void) { return getpid() == owner_pid; }

static void open_counts(void)
{
    REAL(int, open, const char *, int, ...);
    REAL(ssize_t, readlink, const char *, char *, size_t);
    REAL(int, close, int);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%d-%ld%09ld.cnt", count_dir, (int)getpid(), (long)now.tv_sec,
             (long)now.tv_nsec);
    int fd = real_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, sizeof(struct counts_file)) == 0) {
        void *m = mmap(NULL, sizeof(struct counts_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            struct counts_file *c = m;
            char exe[256] = "?";
            ssize_t n = real_readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n > 0) exe[n] = '\0';
            memset(c->header, ' ', HEADER_SIZE);
            int h = snprintf(c->header, HEADER_SIZE, "efsb-latency-counts 1\npid %d\nppid %d\nexe %s\nkinds %s\n",
                             (int)getpid(), (int)getppid(), exe, KIND_NAMES);
            if (h > 0 && h < HEADER_SIZE) c->header[h] = ' ';
            c->header[HEADER_SIZE - 1] = '\n';
            counts = c;
        }
    }
    real_close(fd);     /* not our close(): the lock is held */
}

/* Count one call of `kind` and sleep the model's latency. */
static void hit(enum kind k)
{
    if (!in_owner()) return;             /* a vfork child before exec: not a real client */
    if (count_dir[0]) {
        if (!counts) {
            pthread_mutex_lock(&lock);
            if (!counts) open_counts();
            pthread_mutex_unlock(&lock);
        }
        if (counts) __atomic_fetch_add(&counts->count[k], 1, __ATOMIC_RELAXED);
    }
    if (latency_ns > 0) {
        int saved = errno;
        struct timespec t = {latency_ns / 1000000000L, latency_ns % 1000000000L}, rem;
        while (nanosleep(&t, &rem) == -1 && errno == EINTR) t = rem;
        if (counts) __atomic_fetch_add(&counts->slept_ns, (uint64_t)latency_ns, __ATOMIC_RELAXED);
        errno = saved;
    }
}

/* Count and delay if (dirfd, path) is under a prefix; returns whether it is. */
static int check_at(enum kind k, int dirfd, const char *path)
{
    init();
    if (!nprefixes) return 0;
    char abs[PATH_MAX];
    if (!resolve_as(dirfd, path, abs, k != K_READLINK)) {
        if (counts && in_owner() && path && path[0] && path[0] != '/')   /* a name, not a pipe's fstat */
            __atomic_fetch_add(&counts->unresolved, 1, __ATOMIC_RELAXED);
        return 0;
    }
    if (!under(abs)) return 0;
    hit(k);
    return 1;
}

static int check(enum kind k, const char *path) { return check_at(k, AT_FDCWD, path); }
static int check_fd(enum kind k, int fd) { return check_at(k, fd, ""); }

/* Either of two names under a prefix (link, rename): one call. */
static void check_two(enum kind k, int fd1, const char *p1, int fd2, const char *p2)
{
    init();
    if (!nprefixes) return;
    char a[PATH_MAX], b[PATH_MAX];
    if ((resolve(fd1, p1, a) && under(a)) || (resolve(fd2, p2, b) && under(b))) hit(k);
}

/* ------------------------------------------------------------------------------------------------ fd table */

static void fd_set_path(int fd, int dirfd, const char *path)
{
    if (fd < 0 || fd >= FD_MAX || !in_owner()) return;
    char abs[PATH_MAX];
    char *copy = resolve(dirfd, path, abs) ? strdup(abs) : NULL;
    pthread_mutex_lock(&lock);
    free(fd_path[fd]);
    fd_path[fd] = copy;
    pthread_mutex_unlock(&lock);
}

static void fd_copy(int from, int to)
{
    if (to < 0 || to >= FD_MAX || !in_owner()) return;
    pthread_mutex_lock(&lock);
    char *copy = (from >= 0 && from < FD_MAX && fd_path[from]) ? strdup(fd_path[from]) : NULL;
    free(fd_path[to]);
    fd_path[to] = copy;
    pthread_mutex_unlock(&lock);
}

static void fd_forget(int fd)
{
    if (fd < 0 || fd >= FD_MAX || !in_owner()) return;
    pthread_mutex_lock(&lock);
    free(fd_path[fd]);
    fd_path[fd] = NULL;
    free(dir_state[fd]);
    dir_state[fd] = NULL;
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------------------------------------------ open */

static int mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, int) : 0;
}

static int do_openat(int dirfd, const char *path, int flags, int mode)
{
    REAL(int, openat, int, const char *, int, ...);
    check_at(K_OPEN, dirfd, path);
    int fd = real_openat(dirfd, path, flags, mode);
    int saved = errno;
    fd_set_path(fd, dirfd, path);
    errno = saved;
    return fd;
}

int open(const char *path, int flags, ...)
{
    va_list ap; va_start(ap, flags); int mode = mode_arg(flags, ap); va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}
int open64(const char *path, int flags, ...)
{
    va_list ap; va_start(ap, flags); int mode = mode_arg(flags, ap); va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}
int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap; va_start(ap, flags); int mode = mode_arg(flags, ap); va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap; va_start(ap, flags); int mode = mode_arg(flags, ap); va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}
int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
int creat(const char *path, mode_t mode) { return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

static FILE *do_fopen(FILE *(*real)(const char *, const char *), const char *path, const char *mode)
{
    check(K_OPEN, path);
    FILE *f = real(path, mode);
    int saved = errno;
    if (f) fd_set_path(fileno(f), AT_FDCWD, path);
    errno = saved;
    return f;
}
FILE *fopen(const char *path, const char *mode)
{
    REAL(FILE *, fopen, const char *, const char *);
    return do_fopen(real_fopen, path, mode);
}
FILE *fopen64(const char *path, const char *mode)
{
    REAL(FILE *, fopen64, const char *, const char *);
    return do_fopen(real_fopen64, path, mode);
}
int fclose(FILE *f)
{
    REAL(int, fclose, FILE *);
    if (f) fd_forget(fileno(f));
    return real_fclose(f);
}

int close(int fd)
{
    REAL(int, close, int);
    fd_forget(fd);
    return real_close(fd);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
    REAL(int, close_range, unsigned int, unsigned int, int);
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        for (unsigned int fd = first; fd <= last && fd < FD_MAX; fd++)
            if (fd_path[fd] || dir_state[fd]) fd_forget((int)fd);
    return real_close_range(first, last, flags);
}

int dup(int fd)
{
    REAL(int, dup, int);
    int r = real_dup(fd);
    int saved = errno;
    fd_copy(fd, r);
    errno = saved;
    return r;
}
int dup2(int fd, int to)
{
    REAL(int, dup2, int, int);
    int r = real_dup2(fd, to);
    int saved = errno;
    if (r >= 0 && fd != to) fd_copy(fd, r);
    errno = saved;
    return r;
}
int dup3(int fd, int to, int flags)
{
    REAL(int, dup3, int, int, int);
    int r = real_dup3(fd, to, flags);
    int saved = errno;
    if (r >= 0) fd_copy(fd, r);
    errno = saved;
    return r;
}

static int do_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = real(fd, cmd, arg);
    int saved = errno;
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) fd_copy(fd, r);
    errno = saved;
    return r;
}
int fcntl(int fd, int cmd, ...)
{
    REAL(int, fcntl, int, int, ...);
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);
    return do_fcntl(real_fcntl, fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...)
{
    REAL(int, fcntl64, int, int, ...);
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);
    return do_fcntl(real_fcntl64, fd, cmd, arg);
}

/* ------------------------------------------------------------------------------------------------ stat */

int stat(const char *p, struct stat *b)
{
    REAL(int, stat, const char *, struct stat *);
    check(K_STAT, p);
    return real_stat(p, b);
}
int stat64(const char *p, struct stat64 *b)
{
    REAL(int, stat64, const char *, struct stat64 *);
    check(K_STAT, p);
    return real_stat64(p, b);
}
int lstat(const char *p, struct stat *b)
{
    REAL(int, lstat, const char *, struct stat *);
    check(K_STAT, p);
    return real_lstat(p, b);
}
int lstat64(const char *p, struct stat64 *b)
{
    REAL(int, lstat64, const char *, struct stat64 *);
    check(K_STAT, p);
    return real_lstat64(p, b);
}
int fstat(int fd, struct stat *b)
{
    REAL(int, fstat, int, struct stat *);
    check_fd(K_STAT, fd);
    return real_fstat(fd, b);
}
int fstat64(int fd, struct stat64 *b)
{
    REAL(int, fstat64, int, struct stat64 *);
    check_fd(K_STAT, fd);
    return real_fstat64(fd, b);
}
int fstatat(int d, const char *p, struct stat *b, int fl)
{
    REAL(int, fstatat, int, const char *, struct stat *, int);
    check_at(K_STAT, d, p);
    return real_fstatat(d, p, b, fl);
}
int fstatat64(int d, const char *p, struct stat64 *b, int fl)
{
    REAL(int, fstatat64, int, const char *, struct stat64 *, int);
    check_at(K_STAT, d, p);
    return real_fstatat64(d, p, b, fl);
}
int statx(int d, const char *p, int fl, unsigned int mask, struct statx *b)
{
    REAL(int, statx, int, const char *, int, unsigned int, struct statx *);
    check_at(K_STAT, d, p);
    return real_statx(d, p, fl, mask, b);
}

int statfs(const char *p, struct statfs *b)
{
    REAL(int, statfs, const char *, struct statfs *);
    check(K_STATFS, p);
    return real_statfs(p, b);
}
int statfs64(const char *p, struct statfs64 *b)
{
    REAL(int, statfs64, const char *, struct statfs64 *);
    check(K_STATFS, p);
    return real_statfs64(p, b);
}
int fstatfs(int fd, struct statfs *b)
{
    REAL(int, fstatfs, int, struct statfs *);
    check_fd(K_STATFS, fd);
    return real_fstatfs(fd, b);
}
int fstatfs64(int fd, struct statfs64 *b)
{
    REAL(int, fstatfs64, int, struct statfs64 *);
    check_fd(K_STATFS, fd);
    return real_fstatfs64(fd, b);
}
int statvfs(const char *p, struct statvfs *b)
{
    REAL(int, statvfs, const char *, struct statvfs *);
    check(K_STATFS, p);
    return real_statvfs(p, b);
}
int statvfs64(const char *p, struct statvfs64 *b)
{
    REAL(int, statvfs64, const char *, struct statvfs64 *);
    check(K_STATFS, p);
    return real_statvfs64(p, b);
}
int fstatvfs(int fd, struct statvfs *b)
{
    REAL(int, fstatvfs, int, struct statvfs *);
    check_fd(K_STATFS, fd);
    return real_fstatvfs(fd, b);
}
int fstatvfs64(int fd, struct statvfs64 *b)
{
    REAL(int, fstatvfs64, int, struct statvfs64 *);
    check_fd(K_STATFS, fd);
    return real_fstatvfs64(fd, b);
}

ssize_t readlink(const char *p, char *b, size_t n)
{
    REAL(ssize_t, readlink, const char *, char *, size_t);
    check(K_READLINK, p);
    return real_readlink(p, b, n);
}
ssize_t readlinkat(int d, const char *p, char *b, size_t n)
{
    REAL(ssize_t, readlinkat, int, const char *, char *, size_t);
    check_at(K_READLINK, d, p);
    return real_readlinkat(d, p, b, n);
}
int access(const char *p, int m)
{
    REAL(int, access, const char *, int);
    check(K_ACCESS, p);
    return real_access(p, m);
}
int faccessat(int d, const char *p, int m, int fl)
{
    REAL(int, faccessat, int, const char *, int, int);
    check_at(K_ACCESS, d, p);
    return real_faccessat(d, p, m, fl);
}

/* ------------------------------------------------------------------------------------------------ directories */

/* glibc's opendir is openat + fstat, fdopendir an fstat: the same calls are counted here. */
static DIR *track_dir(DIR *d, int tracked)
{
    if (!d || !tracked || !in_owner()) return d;
    int fd = dirfd(d);
    if (fd < 0 || fd >= FD_MAX) return d;
    struct dirstate *s = malloc(sizeof *s);
    if (!s) return d;
    s->dir = d;
    s->len = s->pos = 0;
    pthread_mutex_lock(&lock);
    free(dir_state[fd]);
    dir_state[fd] = s;
    pthread_mutex_unlock(&lock);
    return d;
}

DIR *opendir(const char *p)
{
    REAL(DIR *, opendir, const char *);
    int tracked = check(K_OPEN, p);
    DIR *d = real_opendir(p);
    int saved = errno;
    if (d && tracked) hit(K_STAT);
    if (d) fd_set_path(dirfd(d), AT_FDCWD, p);
    track_dir(d, tracked);
    errno = saved;
    return d;
}

DIR *fdopendir(int fd)
{
    REAL(DIR *, fdopendir, int);
    int tracked = check_fd(K_STAT, fd);
    DIR *d = real_fdopendir(fd);
    int saved = errno;
    track_dir(d, tracked);
    errno = saved;
    return d;
}

static struct dirstate *state_of(DIR *d)
{
    if (!d) return NULL;
    int fd = dirfd(d);
    if (fd < 0 || fd >= FD_MAX) return NULL;
    struct dirstate *s = dir_state[fd];
    return (s && s->dir == d) ? s : NULL;
}

/* readdir of a directory under a prefix: our own getdents64 calls, each counted and delayed (a READDIR). */
static struct dirent64 *next_entry(struct dirstate *s)
{
    if (s->pos >= s->len) {
        hit(K_GETDENTS);
        long n = syscall(SYS_getdents64, dirfd(s->dir), s->buf, sizeof s->buf);
        if (n <= 0) {
            s->len = s->pos = 0;
            return NULL;     /* end (errno unchanged) or error (errno set) */
        }
        s->len = (int)n;
        s->pos = 0;
    }
    struct dirent64 *e = (struct dirent64 *)(s->buf + s->pos);
    s->pos += e->d_reclen;
    return e;
}

struct dirent *readdir(DIR *d)
{
    REAL(struct dirent *, readdir, DIR *);
    struct dirstate *s = state_of(d);
    if (!s) return real_readdir(d);
    return (struct dirent *)next_entry(s);    /* struct dirent == struct dirent64 on LP64 Linux */
}

struct dirent64 *readdir64(DIR *d)
{
    REAL(struct dirent64 *, readdir64, DIR *);
    struct dirstate *s = state_of(d);
    if (!s) return real_readdir64(d);
    return next_entry(s);
}

void rewinddir(DIR *d)
{
    REAL(void, rewinddir, DIR *);
    struct dirstate *s = state_of(d);
    if (s) s->len = s->pos = 0;
    real_rewinddir(d);
}

int closedir(DIR *d)
{
    REAL(int, closedir, DIR *);
    fd_forget(dirfd(d));
    return real_closedir(d);
}

int chdir(const char *p)
{
    REAL(int, chdir, const char *);
    check(K_CHDIR, p);
    int r = real_chdir(p);
    int saved = errno;
    if (r == 0 && !getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    errno = saved;
    return r;
}

int fchdir(int fd)
{
    REAL(int, fchdir, int);
    check_fd(K_CHDIR, fd);
    int r = real_fchdir(fd);
    int saved = errno;
    if (r == 0 && !getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    errno = saved;
    return r;
}

/* ---------------------------------------------------------------------------------------------- namespace writes */

int mkdir(const char *p, mode_t m)
{
    REAL(int, mkdir, const char *, mode_t);
    check(K_MKDIR, p);
    return real_mkdir(p, m);
}
int mkdirat(int d, const char *p, mode_t m)
{
    REAL(int, mkdirat, int, const char *, mode_t);
    check_at(K_MKDIR, d, p);
    return real_mkdirat(d, p, m);
}
int rmdir(const char *p) { REAL(int, rmdir, const char *); check(K_RMDIR, p); return real_rmdir(p); }
int unlink(const char *p) { REAL(int, unlink, const char *); check(K_UNLINK, p); return real_unlink(p); }
int unlinkat(int d, const char *p, int fl)
{
    REAL(int, unlinkat, int, const char *, int);
    check_at((fl & AT_REMOVEDIR) ? K_RMDIR : K_UNLINK, d, p);
    return real_unlinkat(d, p, fl);
}
int link(const char *a, const char *b)
{
    REAL(int, link, const char *, const char *);
    check_two(K_LINK, AT_FDCWD, a, AT_FDCWD, b);
    return real_link(a, b);
}
int linkat(int da, const char *a, int db, const char *b, int fl)
{
    REAL(int, linkat, int, const char *, int, const char *, int);
    check_two(K_LINK, da, a, db, b);
    return real_linkat(da, a, db, b, fl);
}
/* symlink: only the new name is a file system path (the target is its content) */
int symlink(const char *t, const char *p)
{
    REAL(int, symlink, const char *, const char *);
    check(K_SYMLINK, p);
    return real_symlink(t, p);
}
int symlinkat(const char *t, int d, const char *p)
{
    REAL(int, symlinkat, const char *, int, const char *);
    check_at(K_SYMLINK, d, p);
    return real_symlinkat(t, d, p);
}
int rename(const char *a, const char *b)
{
    REAL(int, rename, const char *, const char *);
    check_two(K_RENAME, AT_FDCWD, a, AT_FDCWD, b);
    return real_rename(a, b);
}
int renameat(int da, const char *a, int db, const char *b)
{
    REAL(int, renameat, int, const char *, int, const char *);
    check_two(K_RENAME, da, a, db, b);
    return real_renameat(da, a, db, b);
}
int renameat2(int da, const char *a, int db, const char *b, unsigned int fl)
{
    REAL(int, renameat2, int, const char *, int, const char *, unsigned int);
    check_two(K_RENAME, da, a, db, b);
    return real_renameat2(da, a, db, b, fl);
}
int mknod(const char *p, mode_t m, dev_t dev)
{
    REAL(int, mknod, const char *, mode_t, dev_t);
    check(K_MKNOD, p);
    return real_mknod(p, m, dev);
}
int mknodat(int d, const char *p, mode_t m, dev_t dev)
{
    REAL(int, mknodat, int, const char *, mode_t, dev_t);
    check_at(K_MKNOD, d, p);
    return real_mknodat(d, p, m, dev);
}

/* ------------------------------------------------------------------------------------------------ attributes */

int chmod(const char *p, mode_t m)
{
    REAL(int, chmod, const char *, mode_t);
    check(K_CHMOD, p);
    return real_chmod(p, m);
}
int fchmod(int fd, mode_t m) { REAL(int, fchmod, int, mode_t); check_fd(K_CHMOD, fd); return real_fchmod(fd, m); }
int fchmodat(int d, const char *p, mode_t m, int fl)
{
    REAL(int, fchmodat, int, const char *, mode_t, int);
    check_at(K_CHMOD, d, p);
    return real_fchmodat(d, p, m, fl);
}
int lchmod(const char *p, mode_t m)
{
    REAL(int, lchmod, const char *, mode_t);
    check(K_CHMOD, p);
    return real_lchmod(p, m);
}
int chown(const char *p, uid_t u, gid_t g)
{
    REAL(int, chown, const char *, uid_t, gid_t);
    check(K_CHOWN, p);
    return real_chown(p, u, g);
}
int lchown(const char *p, uid_t u, gid_t g)
{
    REAL(int, lchown, const char *, uid_t, gid_t);
    check(K_CHOWN, p);
    return real_lchown(p, u, g);
}
int fchown(int fd, uid_t u, gid_t g)
{
    REAL(int, fchown, int, uid_t, gid_t);
    check_fd(K_CHOWN, fd);
    return real_fchown(fd, u, g);
}
int fchownat(int d, const char *p, uid_t u, gid_t g, int fl)
{
    REAL(int, fchownat, int, const char *, uid_t, gid_t, int);
    check_at(K_CHOWN, d, p);
    return real_fchownat(d, p, u, g, fl);
}
int utimensat(int d, const char *p, const struct timespec t[2], int fl)
{
    REAL(int, utimensat, int, const char *, const struct timespec *, int);
    check_at(K_UTIMES, d, p);
    return real_utimensat(d, p, t, fl);
}
int futimens(int fd, const struct timespec t[2])
{
    REAL(int, futimens, int, const struct timespec *);
    check_fd(K_UTIMES, fd);
    return real_futimens(fd, t);
}
int utimes(const char *p, const struct timeval t[2])
{
    REAL(int, utimes, const char *, const struct timeval *);
    check(K_UTIMES, p);
    return real_utimes(p, t);
}
int lutimes(const char *p, const struct timeval t[2])
{
    REAL(int, lutimes, const char *, const struct timeval *);
    check(K_UTIMES, p);
    return real_lutimes(p, t);
}
int futimes(int fd, const struct timeval t[2])
{
    REAL(int, futimes, int, const struct timeval *);
    check_fd(K_UTIMES, fd);
    return real_futimes(fd, t);
}
int utime(const char *p, const struct utimbuf *t)
{
    REAL(int, utime, const char *, const struct utimbuf *);
    check(K_UTIMES, p);
    return real_utime(p, t);
}
