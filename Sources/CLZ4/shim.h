/* Debian's liblz4-dev: the frame format Kafka's lz4 codec uses. */
#include <lz4frame.h>
