#include <cstdio>

#include "commands.h"
#include "usage.h"
#include "dsvmi/gate.h"
#include "dsvmi/ring.h"
#include "dsvmi/version.h"

namespace dsvmi::cli {

int cmd_version(int argc, char** argv) {
  if (argc != 0) return usage_exit(wants_help(argc, argv), "usage: dsvmi version\n");
  std::printf("dsvmi %s (ring ABI %d, gate ABI %d)\n", DSVMI_VERSION_STRING, DSVMI_RING_ABI_VERSION,
              DSVMI_GATE_ABI_VERSION);
  return 0;
}

}  // namespace dsvmi::cli
