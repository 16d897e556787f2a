#include "controller/malloc_tuning.h"

#include <malloc.h>

namespace hotplug::controller {

void TuneMallocForLongRunning() {
  // Setting either threshold turns glibc's dynamic adjustment of both off.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
}

}  // namespace hotplug::controller
