/* Debian's libsnappy-dev, through its C interface. */
#include <snappy-c.h>
