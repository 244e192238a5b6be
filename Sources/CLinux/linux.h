// sync_file_range(2), as glibc defines it (off64_t is int64_t on Linux's
// 64-bit ABIs), and its flags.
#include <stdint.h>

int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);

enum {
    CLINUX_SYNC_FILE_RANGE_WAIT_BEFORE = 1,
    CLINUX_SYNC_FILE_RANGE_WRITE = 2,
    CLINUX_SYNC_FILE_RANGE_WAIT_AFTER = 4,
};

// ---------------------------------------------------------------------
// clinux_spawn: a child started the way glibc's posix_spawn starts one
// (clone with CLONE_VM|CLONE_VFORK: it runs in our memory, on a stack of
// its own, while we wait for its exec), but one that also takes other ids
// and another directory before the exec, which posix_spawn cannot do.
// A fork would copy our page tables for a child that throws them away at
// once. The child makes raw system calls only: glibc's setuid() and
// friends would act on our threads too (the child shares our memory, so
// glibc would take them for its own), and nothing in it may allocate.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...);
int execvpe(const char *file, char *const argv[], char *const envp[]);

enum {
    CLINUX_SPAWN_DUP = 0,
    CLINUX_SPAWN_OPEN = 1,
    // where a failed start stopped (ChildProcess.Step's numbers)
    CLINUX_STEP_DESCRIPTORS = 1,
    CLINUX_STEP_CREDENTIALS = 2,
    CLINUX_STEP_DIRECTORY = 3,
    CLINUX_STEP_SESSION = 4,
    CLINUX_STEP_EXEC = 5,
};

typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;          // NULL: ours
    int search_path;
    int nfds;
    const int *fd_kind;         // CLINUX_SPAWN_DUP or _OPEN, for each step
    const int *fd_source;       // DUP: our descriptor
    const int *fd_target;
    char *const *fd_path;       // OPEN: the file, its flags and mode
    const int *fd_flags;
    const unsigned *fd_mode;
    const int *default_signals;
    int nsignals;
    int new_session;
    int set_ids;
    unsigned uid, gid;
    int set_groups;
    const unsigned *groups;
    int ngroups;
    const char *directory;      // NULL: ours
    // written by a child that failed
    int failed_step;
    int failed_errno;
} clinux_spawn_plan;

static inline long clinux_raw(long n, long a, long b, long c) { return syscall(n, a, b, c); }

// The ids of the plan, then the check that root's cannot be taken back
// (as Privileges.drop does): 0 or an errno.
static inline int clinux_spawn_ids(clinux_spawn_plan *p) {
    if (clinux_raw(SYS_geteuid, 0, 0, 0) != 0) {
        if (clinux_raw(SYS_getuid, 0, 0, 0) != p->uid || clinux_raw(SYS_geteuid, 0, 0, 0) != p->uid) return EPERM;
    } else {
        if (p->set_groups && clinux_raw(SYS_setgroups, p->ngroups, (long)p->groups, 0) != 0) return errno;
        if (clinux_raw(SYS_setresgid, p->gid, p->gid, p->gid) != 0) return errno;
        if (clinux_raw(SYS_setresuid, p->uid, p->uid, p->uid) != 0) return errno;
    }
    if (clinux_raw(SYS_getuid, 0, 0, 0) != p->uid || clinux_raw(SYS_geteuid, 0, 0, 0) != p->uid
        || clinux_raw(SYS_getgid, 0, 0, 0) != p->gid || clinux_raw(SYS_getegid, 0, 0, 0) != p->gid) return EPERM;
    if (p->uid != 0) {
        if (clinux_raw(SYS_setuid, 0, 0, 0) == 0) return EPERM;
        if (p->gid != 0 && clinux_raw(SYS_setgid, 0, 0, 0) == 0) return EPERM;
    }
    return 0;
}

static inline int clinux_spawn_child(void *arg) {
    clinux_spawn_plan *p = (clinux_spawn_plan *)arg;
    int step = CLINUX_STEP_DESCRIPTORS, err = 0;
    // Our handlers must not run here, on this stack, in our memory: every
    // caught signal goes back to its default, as do the plan's.
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        if (sigaction(s, NULL, &old) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) sigaction(s, &dfl, NULL);
    }
    for (int i = 0; i < p->nsignals; i++) sigaction(p->default_signals[i], &dfl, NULL);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    int k = 0;
    for (int i = 0; i < p->nfds; i++) {
        if (p->fd_kind[i] == CLINUX_SPAWN_DUP) {
            if (dup2(p->fd_source[i], p->fd_target[i]) < 0) { err = errno; goto fail; }
        } else {
            int fd = open(p->fd_path[k++], p->fd_flags[i], p->fd_mode[i]);
            if (fd < 0) { err = errno; goto fail; }
            if (fd != p->fd_target[i]) {
                if (dup2(fd, p->fd_target[i]) < 0) { err = errno; goto fail; }
                close(fd);
            }
        }
    }
    step = CLINUX_STEP_SESSION;
    if (p->new_session && setsid() < 0) { err = errno; goto fail; }
    step = CLINUX_STEP_CREDENTIALS;
    if (p->set_ids && (err = clinux_spawn_ids(p)) != 0) goto fail;
    step = CLINUX_STEP_DIRECTORY;
    if (p->directory && chdir(p->directory) != 0) { err = errno; goto fail; }
    step = CLINUX_STEP_EXEC;
    extern char **environ;   // here, so that Swift sees only Glibc's
    char *const *env = p->envp ? p->envp : environ;
    if (p->search_path) execvpe(p->path, p->argv, env);
    else execve(p->path, p->argv, env);
    err = errno;
fail:
    p->failed_step = step;
    p->failed_errno = err;
    _exit(127);
}

// Starts the plan: the child's pid, or -1 with errno set (a child that
// failed has been reaped; p->failed_step and p->failed_errno say where).
static inline pid_t clinux_spawn(clinux_spawn_plan *p) {
    const size_t size = 256 * 1024;   // execvpe builds each PATH candidate on it
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    p->failed_step = 0;
    p->failed_errno = 0;
    // No handler of ours may run in the child before it has reset them.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int saved_errno = errno;
    pid_t pid = clone(clinux_spawn_child, (char *)stack + size, 0x00000100 /* CLONE_VM */ | 0x00004000 /* CLONE_VFORK */ | SIGCHLD, p);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    munmap(stack, size);
    if (pid < 0) { errno = clone_errno; return -1; }
    errno = saved_errno;
    if (p->failed_step != 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        errno = p->failed_errno;
        return -1;
    }
    return pid;
}
