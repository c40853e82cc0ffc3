/* stack.c - `ensflow up` / `ensflow down`: redis-server, ensflow-broker and every service as
 * supervised child processes of one background supervisor; logs under <run-dir>/logs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ensflow/log.h"

#define MAX_CHILDREN 32

typedef struct {
    char name[32];    /* log name, e.g. "trainer-1" */
    char *argv[12];
    int blas_single;  /* OPENBLAS_NUM_THREADS=1: give the cores one owner */
    pid_t pid;
    double started;
    int restarts;
} child_t;

static volatile sig_atomic_t sup_stop;
static void on_term(int sig) { (void)sig; sup_stop = 1; }

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The directory of this executable: the services are installed beside it. */
static void bin_dir(char *buf, size_t size) {
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(buf, size, ".");
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static pid_t spawn(child_t *c, const char *run_dir) {
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/logs/%s.log", run_dir, c->name);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (c->blas_single) /* and the nn thread pool: 2 trainers share the cores */
            setenv("OPENBLAS_NUM_THREADS", "1", 1), setenv("ENSFLOW_NN_THREADS", "1", 1);
        execvp(c->argv[0], c->argv);
        fprintf(stderr, "cannot run %s: %s\n", c->argv[0], strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    c->started = cli_now();
    return pid;
}

static int write_line(const char *path, const char *line) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", line);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Wait for a file to appear (or for child c to die). */
static int wait_file(const char *path, const child_t *c, double timeout_s) {
    double t0 = cli_now();
    while (cli_now() - t0 < timeout_s) {
        if (file_exists(path))
            return 0;
        if (c && waitpid(c->pid, NULL, WNOHANG) == c->pid)
            return -1;
        sleep_s(0.05);
    }
    return -1;
}

/* Stop children last-started first, each group given time to close cleanly: the services
 * (which leave their consumer groups through the broker), then the broker, then Redis. */
static void stop_range(child_t *ch, int from, int to, double grace_s) {
    for (int i = to - 1; i >= from; i--)
        if (ch[i].pid > 0)
            kill(ch[i].pid, SIGTERM);
    double t0 = cli_now();
    for (int i = to - 1; i >= from; i--) {
        while (ch[i].pid > 0 && waitpid(ch[i].pid, NULL, WNOHANG) == 0) {
            if (cli_now() - t0 > grace_s) {
                kill(ch[i].pid, SIGKILL);
                waitpid(ch[i].pid, NULL, 0);
            } else
                sleep_s(0.05);
        }
        ch[i].pid = 0;
    }
}

static void stop_children(child_t *ch, int n) {
    stop_range(ch, 2, n, 15);
    stop_range(ch, 1, n < 2 ? n : 2, 5);
    stop_range(ch, 0, n < 1 ? n : 1, 10);
}

/* The supervisor: runs in the background until SIGTERM; restarts whatever dies. */
static int supervise(const cli_stack_opts_t *o) {
    char dir[PATH_MAX], path[PATH_MAX], url[128], port[16], parts[16];
    static char bins[MAX_CHILDREN][PATH_MAX];
    bin_dir(dir, sizeof dir);
    ens_log_init("supervisor");
    /* no SA_RESTART: the signal must interrupt waitpid() */
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    child_t ch[MAX_CHILDREN];
    memset(ch, 0, sizeof ch);
    int n = 0;
    int p = free_port();
    snprintf(port, sizeof port, "%d", p);
    snprintf(parts, sizeof parts, "%d", o->partitions);
    static char redis_dir[PATH_MAX];
    snprintf(redis_dir, sizeof redis_dir, "%s/redis", o->run_dir);
    mkdir(redis_dir, 0755);
    /* redis-server keeps an append-only file, so a restarted Redis has the state back */
    child_t *redis = &ch[n++];
    snprintf(redis->name, sizeof redis->name, "redis");
    char *rargv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", redis_dir,
                     "--appendonly", "yes", "--save", "", NULL};
    memcpy(redis->argv, rargv, sizeof rargv);
    child_t *broker = &ch[n++];
    snprintf(broker->name, sizeof broker->name, "broker");
    snprintf(bins[0], PATH_MAX, "%.4000s/ensflow-broker", dir);
    char *bargv[] = {bins[0], "--run-dir", (char *)o->run_dir, "--partitions", parts, NULL};
    memcpy(broker->argv, bargv, sizeof bargv);
    const struct {
        const char *svc;
        int count, numbered;
    } services[] = {{"proposer", 1, 0},
                    {"evaluator", 1, 0},
                    {"selector", 1, 0},
                    {"placer", 1, 0},
                    {"inference", o->inference_groups, o->inference_groups > 1},
                    {"trainer", o->trainers, 1}};
    for (size_t s = 0; s < sizeof services / sizeof services[0]; s++)
        for (int i = 0; i < services[s].count && n < MAX_CHILDREN; i++) {
            child_t *c = &ch[n++];
            if (services[s].numbered)
                snprintf(c->name, sizeof c->name, "%s-%d", services[s].svc, i + 1);
            else
                snprintf(c->name, sizeof c->name, "%s", services[s].svc);
            snprintf(bins[n], PATH_MAX, "%.4000s/ensflow-%.20s", dir, services[s].svc);
            c->argv[0] = bins[n];
            c->argv[1] = "--run-dir";
            c->argv[2] = (char *)o->run_dir;
            c->argv[3] = NULL;
            c->blas_single = 1;
        }
    snprintf(path, sizeof path, "%s/bootstrap", o->run_dir);
    unlink(path);
    int ok = spawn(redis, o->run_dir) > 0;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", p);
    /* Redis answers once it is up; only then do the services learn where it is */
    ens_redis_t *r = NULL;
    for (double t0 = cli_now(); ok && cli_now() - t0 < 15;) {
        if (ens_redis_connect(url, &r, NULL, 0) == ENS_OK)
            break;
        sleep_s(0.1);
    }
    ens_redis_free(r);
    snprintf(path, sizeof path, "%s/redis.url", o->run_dir);
    ok = ok && r && write_line(path, url) == 0;
    snprintf(path, sizeof path, "%s/bootstrap", o->run_dir);
    ok = ok && spawn(broker, o->run_dir) > 0 && wait_file(path, broker, 15) == 0;
    for (int i = 2; ok && i < n; i++)
        ok = spawn(&ch[i], o->run_dir) > 0;
    snprintf(path, sizeof path, "%s/ready", o->run_dir);
    if (!ok) {
        ENS_ERROR("msg=\"stack did not start\" see=%s/logs", o->run_dir);
        stop_children(ch, n);
        return 1;
    }
    write_line(path, "up");
    ENS_INFO("msg=\"stack up\" redis=%s children=%d", url, n);
    while (!sup_stop) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n && !sup_stop; i++) {
            if (ch[i].pid != pid)
                continue;
            ch[i].pid = 0;
            ENS_WARN("msg=\"child exited, restarting\" child=%s status=%d restarts=%d",
                     ch[i].name, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
                     ch[i].restarts);
            if (cli_now() - ch[i].started < 2)
                sleep_s(1); /* crash loop: do not spin */
            ch[i].restarts++;
            if (i == 1) { /* the old address must not be read as the new broker's */
                snprintf(path, sizeof path, "%s/bootstrap", o->run_dir);
                unlink(path);
            }
            spawn(&ch[i], o->run_dir);
            if (i == 1) {
                /* a new broker has a new address and no topics: every service starts over */
                wait_file(path, &ch[1], 15);
                for (int j = 2; j < n; j++)
                    if (ch[j].pid > 0)
                        kill(ch[j].pid, SIGTERM);
            }
        }
    }
    ENS_INFO("msg=\"stack stopping\"");
    stop_children(ch, n);
    const char *files[] = {"ready", "bootstrap", "redis.url", "supervisor.pid"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", o->run_dir, files[i]);
        unlink(path);
    }
    return 0;
}

static pid_t read_pid(const char *run_dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/supervisor.pid", run_dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid > 0 && kill((pid_t)pid, 0) == 0 ? (pid_t)pid : 0;
}

int cli_stack_up(const cli_stack_opts_t *o) {
    char path[PATH_MAX];
    if (read_pid(o->run_dir)) {
        fprintf(stderr, "ensflow: the stack in %s is already up\n", o->run_dir);
        return 0;
    }
    snprintf(path, sizeof path, "%s/logs", o->run_dir);
    if ((mkdir(o->run_dir, 0755) && errno != EEXIST) || (mkdir(path, 0755) && errno != EEXIST)) {
        fprintf(stderr, "ensflow up: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/ready", o->run_dir);
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("ensflow up: fork");
        return 1;
    }
    if (pid == 0) {
        /* detach twice, so that the supervisor belongs to init and never lingers as a zombie
         * of the process that started it */
        setsid();
        pid_t sup = fork();
        if (sup != 0)
            _exit(sup < 0 ? 1 : 0);
        char log[PATH_MAX], pidline[32];
        snprintf(log, sizeof log, "%s/logs/supervisor.log", o->run_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0 && nul >= 0) {
            dup2(nul, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
            close(nul);
        }
        snprintf(log, sizeof log, "%s/supervisor.pid", o->run_dir);
        snprintf(pidline, sizeof pidline, "%d", (int)getpid());
        write_line(log, pidline);
        _exit(supervise(o));
    }
    waitpid(pid, NULL, 0); /* the intermediate process exits at once */
    fprintf(stderr, "ensflow: starting the local stack in %s (logs in %s/logs) ...\n",
            o->run_dir, o->run_dir);
    for (double t0 = cli_now(); cli_now() - t0 < 60; sleep_s(0.1)) {
        if (file_exists(path)) {
            fprintf(stderr, "ensflow: stack up: redis-server, ensflow-broker, proposer, "
                            "%d trainer(s), evaluator, selector, placer, %d inference group(s)\n",
                    o->trainers, o->inference_groups);
            return 0;
        }
        if (!read_pid(o->run_dir) && cli_now() - t0 > 5)
            break;
    }
    fprintf(stderr, "ensflow up: the stack did not come up; see %s/logs/supervisor.log\n",
            o->run_dir);
    cli_stack_down(o->run_dir);
    return 1;
}

int cli_stack_down(const char *run_dir) {
    pid_t pid = read_pid(run_dir);
    if (!pid) {
        fprintf(stderr, "ensflow: no stack is running in %s\n", run_dir);
        return 0;
    }
    kill(pid, SIGTERM);
    for (double t0 = cli_now(); cli_now() - t0 < 60; sleep_s(0.1))
        if (kill(pid, 0) != 0) {
            fprintf(stderr, "ensflow: stack in %s stopped\n", run_dir);
            return 0;
        }
    fprintf(stderr, "ensflow down: supervisor %d did not stop within 60 s\n", (int)pid);
    return 1;
}

int cli_up(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"trainers", ENS_CONF_INT, "2", 1, 64, "trainer processes"},
        {"inference", ENS_CONF_INT, "1", 0, 16,
         "single-device inference groups (0: serve with your own, e.g. an MPI group)"},
        {"partitions", ENS_CONF_INT, "4", 1, 256, "partitions of every topic"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = ens_svc_conf("ensflow up", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    cli_stack_opts_t o = {.run_dir = ens_conf_str(conf, "run-dir"),
                          .trainers = (int)ens_conf_int(conf, "trainers"),
                          .inference_groups = (int)ens_conf_int(conf, "inference"),
                          .partitions = (int)ens_conf_int(conf, "partitions")};
    rc = cli_stack_up(&o);
    ens_conf_free(conf);
    return rc;
}

int cli_down(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = ens_svc_conf("ensflow down", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    rc = cli_stack_down(ens_conf_str(conf, "run-dir"));
    ens_conf_free(conf);
    return rc;
}
