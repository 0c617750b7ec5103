/* version.c — the version of the linked library. */
#include "internal.h"

#define XCAT_STR2(x) #x
#define XCAT_STR(x) XCAT_STR2(x)

unsigned xcat_version_number(void)
{
    return XCAT_VERSION_NUMBER;
}

const char *xcat_version_string(void)
{
    return XCAT_STR(XCAT_VERSION_MAJOR) "." XCAT_STR(XCAT_VERSION_MINOR) "." XCAT_STR(
        XCAT_VERSION_PATCH);
}
