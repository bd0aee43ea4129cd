/*
 * Error codes of valuestream.
 *
 * Every function that can fail returns 0 or a negative VS_E* code. The codes come from one
 * X-macro list so that the enum, vs_strerror() and vs_err_name() never drift apart.
 */
#ifndef VALUESTREAM_ERROR_H
#define VALUESTREAM_ERROR_H

#define VS_ERRNO_MAP(XX)                                                                          \
    XX(NOMEM, "out of memory")                                                                     \
    XX(INVAL, "invalid argument")                                                                  \
    XX(CONFIG, "bad configuration")                                                                \
    XX(IO, "input/output error")                                                                   \
    XX(DECODE, "undecodable record")                                                               \
    XX(SCHEMA, "schema violation")                                                                 \
    XX(TOOBIG, "record too large")                                                                 \
    XX(KAFKA, "kafka error")                                                                       \
    XX(STORE, "state store error")                                                                 \
    XX(CORRUPT, "corrupt data")                                                                    \
    XX(VERSION, "unsupported version")                                                             \
    XX(NOTFOUND, "not found")                                                                      \
    XX(NOCONV, "did not converge")                                                                 \
    XX(FULL, "no space left")

enum vs_errno {
    VS_OK = 0,
#define VS__ERR_ENUM(name, msg) VS_E##name,
    VS__ERR_FIRST = -1000,
    VS_ERRNO_MAP(VS__ERR_ENUM)
#undef VS__ERR_ENUM
};

/* A static, human-readable description of err (0 or a VS_E* code). */
const char *vs_strerror(int err);
/* The code's name, e.g. "VS_ECONFIG". */
const char *vs_err_name(int err);

#endif
