/*
 * Error strings for the VS_E* codes of include/valuestream/error.h.
 */
#include <valuestream/error.h>

const char *vs_strerror(int err)
{
    switch (err) {
    case VS_OK:
        return "success";
#define VS__ERR_STR(name, msg)                                                                     \
    case VS_E##name:                                                                               \
        return msg;
        VS_ERRNO_MAP(VS__ERR_STR)
#undef VS__ERR_STR
    default:
        return "unknown error";
    }
}

const char *vs_err_name(int err)
{
    switch (err) {
    case VS_OK:
        return "VS_OK";
#define VS__ERR_NAME(name, msg)                                                                    \
    case VS_E##name:                                                                               \
        return "VS_E" #name;
        VS_ERRNO_MAP(VS__ERR_NAME)
#undef VS__ERR_NAME
    default:
        return "VS_EUNKNOWN";
    }
}
