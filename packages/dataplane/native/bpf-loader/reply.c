/* Replies to the driver (u32 status, u32 length, payload) and the growing buffer dumps are built in. */
#include "loader.h"

int chain_failed;

void reply(uint32_t status, const void *data, uint32_t len)
{
	uint32_t h[2] = {status, len};
	if (status) chain_failed = 1;
	if (fwrite(h, sizeof(h), 1, stdout) != 1 || (len && fwrite(data, len, 1, stdout) != 1)) exit(1);
	fflush(stdout);
}

void reply_err(int err, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if (n >= (int)sizeof(msg)) n = sizeof(msg) - 1;
	reply(err > 0 ? err : EINVAL, msg, (uint32_t)n);
}

/* Room for n more bytes at o->p + o->len. */
void reserve(struct out *o, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n) cap *= 2;
		o->p = realloc(o->p, cap);
		if (!o->p) exit(1);
		o->cap = cap;
	}
}

void put(struct out *o, const void *d, size_t n)
{
	reserve(o, n);
	memcpy(o->p + o->len, d, n);
	o->len += n;
}

