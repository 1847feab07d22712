/* log.c: the library's only way to say something: a caller's callback. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "zhv_priv.h"

static struct {
	pthread_mutex_t lock;
	zhv_log_fn fn;
	void *opaque;
	zhv_log_level_t max;
} g_log = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, ZHV_LOG_ERROR};

void zhv_set_log(zhv_log_fn fn, void *opaque, zhv_log_level_t max_level)
{
	pthread_mutex_lock(&g_log.lock);
	g_log.fn = fn;
	g_log.opaque = opaque;
	g_log.max = max_level;
	pthread_mutex_unlock(&g_log.lock);
}

bool zhv_log_enabled(zhv_log_level_t level)
{
	pthread_mutex_lock(&g_log.lock);
	bool on = g_log.fn != NULL && level <= g_log.max;
	pthread_mutex_unlock(&g_log.lock);
	return on;
}

void zhv_log(zhv_log_level_t level, const char *fmt, ...)
{
	char msg[1024];
	zhv_log_fn fn;
	void *opaque;

	pthread_mutex_lock(&g_log.lock);
	fn = level <= g_log.max ? g_log.fn : NULL;
	opaque = g_log.opaque;
	pthread_mutex_unlock(&g_log.lock);
	if (!fn)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(opaque, level, msg);
}

int zhv_ioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

zhv_status_t zhv_status_from_errno(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENOMEM:
		return ZHV_ERR_NO_MEMORY;
	case EINVAL:
		return ZHV_ERR_INVALID_ARGS;
	case EEXIST:
		return ZHV_ERR_ALREADY_EXISTS;
	case ENOSPC:
	case EMFILE:
	case ENFILE:
		return ZHV_ERR_NO_RESOURCES;
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return ZHV_ERR_NOT_SUPPORTED;
	case EACCES:
	case EPERM:
		return ZHV_ERR_ACCESS_DENIED;
	default:
		return ZHV_ERR_IO;
	}
}
