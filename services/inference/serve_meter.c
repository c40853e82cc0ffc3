/* serve_meter.c - what an inference group measures of itself for the placer: its serving
 * CPU per request outside the prediction (overhead) and its speed against the prediction. */
#include "serve_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/log.h"

int64_t ens_serve_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU seconds of this process's serving threads outside the prediction: the I/O thread and
 * librdkafka's threads (named "ens-io" and "rdk:..."; Linux). -1 when unreadable. */
static double serving_cpu_s(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    double total = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char path[96], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.32s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close || close < open)
            continue;
        *close = 0;
        const char *name = open + 1;
        if (strcmp(name, "ens-io") && strncmp(name, "rdk:", 4))
            continue;
        unsigned long ut = 0, st = 0; /* fields 14 and 15: utime, stime */
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) ==
            2)
            total += (double)(ut + st) / (double)(tck > 0 ? tck : 100);
    }
    closedir(dir);
    return total;
}

/* The group's serving overhead per request, what the placer adds to each device's predicted
 * load: looked at every 0.5 s, measured over windows of at least 200 requests, smoothed; a
 * window in which nothing was served starts afresh, so idle polling is not charged. */
void ens_serve_measure_overhead(ens_serve_t *g) {
    int64_t now = ens_serve_mono_us();
    if (now - g->overhead_checked_us < 500000)
        return;
    g->overhead_checked_us = now;
    double cpu = serving_cpu_s(), served = ens_metrics_value(g->m_requests);
    if (cpu < 0)
        return;
    double n = served - g->overhead_requests;
    if (g->overhead_started && n >= 200) {
        double ms = 1e3 * (cpu - g->overhead_cpu_s) / n;
        if (ms >= 0)
            g->overhead_ms = g->overhead_ms > 0 ? 0.5 * g->overhead_ms + 0.5 * ms : ms;
    }
    if (!g->overhead_started || n >= 200 || n <= 0) {
        g->overhead_cpu_s = cpu;
        g->overhead_requests = served;
        g->overhead_started = 1;
    }
}

/* The group's speed against the placer's prediction, which the placer then uses: the wall
 * time from one batch's start to the next's (us) for the first one's rows, counted only while
 * the group is busy (the next batch was full when the compute thread came for it), on batches
 * at least half full (small ones cost more per sample), over windows of 256 samples,
 * smoothed. So it is the group's capacity where it serves: devices contending with each
 * other, and whatever else takes the cores (the group's own Kafka I/O, the broker, a client
 * on the same machine) count. Only with overlap: the serial loop's device idles during its
 * I/O, which the overhead term models. */
void ens_serve_measure_speed(ens_serve_t *g, int rows, int64_t us) {
    if (!g->overlap || g->predicted_ms <= 0 || rows < (g->max_batch + 1) / 2)
        return;
    g->speed_us += (double)us;
    g->speed_rows += rows;
    if (g->speed_rows < 256)
        return;
    double s = g->predicted_ms / (g->speed_us / 1e3 / g->speed_rows);
    if (s > 0 && s < 1e3)
        g->speed = g->speed > 0 ? 0.5 * g->speed + 0.5 * s : s;
    ENS_DEBUG("speed", "msg=\"speed measured\" window=%.3f speed=%.3f", s, g->speed);
    g->speed_us = g->speed_rows = 0;
}
