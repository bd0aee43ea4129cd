/*
 * Decimal formatting for the hot paths (generated ids, output ids), where snprintf costs more
 * than the work around it.
 */
#ifndef VS_ENGINE_DECIMAL_H
#define VS_ENGINE_DECIMAL_H

#include <stdint.h>

/* Write v in decimal at p, NUL-terminated; returns the position of the NUL. */
static inline char *vs__put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        *p++ = tmp[--n];
    }
    *p = 0;
    return p;
}

#endif
