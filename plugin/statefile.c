/*
 * statefile.c - the plugin's own files (session_file, revocation_file):
 * each is replaced whole, never edited in place, so that a crash or a
 * power loss leaves either the old version or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

/* Syncs the directory of path, so that a rename into it survives a power
 * loss. Returns 0 or -errno. */
static int statefile__sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd, rc = 0;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int fa_statefile_temp(const char *path, char *out, size_t size)
{
    return snprintf(out, size, "%s.tmp", path) < (int)size ? 0 : -ENAMETOOLONG;
}

int fa_statefile_replace(const char *path, int (*write)(FILE *f, void *arg), void *arg)
{
    char tmp[PATH_MAX];
    FILE *f;
    int fd, rc;

    if (fa_statefile_temp(path, tmp, sizeof(tmp)) != 0)
        return -ENAMETOOLONG;
    /* A new file, whatever was left there: an old one would keep its
     * mode and owner, and a link there would be followed. */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return -errno;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    f = fdopen(fd, "w");
    if (f == NULL) {
        rc = -errno;
        close(fd);
        unlink(tmp);
        return rc;
    }
    rc = write(f, arg);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc != 0 ? rc : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return statefile__sync_dir(path);
}

int fa_statefile_read(const char *path, const char *magic, const char *what,
                      int (*line)(char *text, void *arg), void *arg)
{
    size_t lines = 0, cap = 0;
    char *text = NULL;
    ssize_t got;
    FILE *f;
    int rc = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 1;
        rc = -errno;
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot read %s: %s", path, strerror(errno));
        return rc;
    }
    errno = 0;
    got = getline(&text, &cap, f);
    if (got < 0 && !feof(f)) {
        rc = errno != 0 ? -errno : -EIO;
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot read %s: %s", path, strerror(-rc));
        free(text);
        fclose(f);
        return rc;
    }
    if (got < 0 || strncmp(text, magic, strlen(magic)) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: %s is not a %s file", path, what);
        free(text);
        fclose(f);
        return -EINVAL;
    }
    /* getline: a line of any length (a long client id), never split. */
    while (rc == 0 && getline(&text, &cap, f) >= 0) {
        lines++;
        rc = line(text, arg);
    }
    free(text);
    /* Stopped before the end: a read error, or no memory for a line
     * (getline then leaves ferror unset in glibc before 2.37). */
    if (rc == 0 && !feof(f)) {
        rc = -EIO;
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot read %s: %s after %zu lines", path,
                             ferror(f) ? "read error" : "out of memory", lines);
    }
    fclose(f);
    return rc;
}
