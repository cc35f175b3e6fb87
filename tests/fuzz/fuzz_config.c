/*
 * fuzz_config.c - fp_conf_load on any bytes as a configuration file (the
 * daemons' -c file), over a table with every option type. What it accepts
 * must hold values inside the table's ranges.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fp_config.h"

typedef struct {
    char *name, *path;
    int64_t port, count;
    bool on;
} fuzz__cfg;

static const fp_conf_opt fuzz__opts[] = {
    {"name", FP_CONF_STRING, offsetof(fuzz__cfg, name), "x", 0, 0, false, "a string"},
    {"path", FP_CONF_STRING, offsetof(fuzz__cfg, path), NULL, 0, 0, true, "a required string"},
    {"port", FP_CONF_INT, offsetof(fuzz__cfg, port), "1", 1, 65535, false, "an int"},
    {"count", FP_CONF_INT, offsetof(fuzz__cfg, count), "0", -5, 1000000, false, "an int"},
    {"on", FP_CONF_BOOL, offsetof(fuzz__cfg, on), "off", 0, 0, false, "a bool"},
};
#define FUZZ__N (sizeof(fuzz__opts) / sizeof(fuzz__opts[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[FP_CONF_ERR_MAX];
    fuzz__cfg cfg;
    int fd = memfd_create("fuzz_config", 0);

    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (fp_conf_load(fuzz__opts, FUZZ__N, &cfg, path, "FP_FUZZ_CONFIG_", err, sizeof(err)) == 0) {
        if (cfg.path == NULL || cfg.port < 1 || cfg.port > 65535 || cfg.count < -5 ||
            cfg.count > 1000000)
            abort();
        fp_conf_free(fuzz__opts, FUZZ__N, &cfg);
    }
    close(fd);
    return 0;
}
