// How the process asks glibc's allocator to behave: the informer's first LIST is answered
// whole from the API server's watch cache (tens of MB of text at 10,000s of objects), and
// by default glibc raises its mmap and trim thresholds after such a block is freed, so the
// heap keeps that much free memory for good. Fixed thresholds give it back.
#pragma once

namespace hotplug::controller {

// Call once, first thing in main. Blocks of 256 KiB and more are mapped and unmapped on
// their own; a heap whose free top exceeds 1 MiB is trimmed.
void TuneMallocForLongRunning();

}  // namespace hotplug::controller
