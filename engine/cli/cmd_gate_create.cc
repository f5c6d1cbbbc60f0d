// dsvmi gate-create PATH --disk-size N [--grain 4096] [--mode set] [--add OFF:LEN]...
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "dsvmi/gate_writer.h"
#include "gate_args.h"

namespace dsvmi::cli {

namespace {

void gate_create_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi gate-create PATH --disk-size N [--grain 4096] "
               "[--mode pass-all|drop-all|set] [--add OFF:LEN]... [--clear OFF:LEN]...\n"
               "Creates the gate file (mode 0600, tmpfs recommended) QEMU's dsvmi filter maps,\n"
               "and publishes its first generation. Sizes take K/M/G/T suffixes.\n");
}

}  // namespace

int cmd_gate_create(int argc, char** argv) {
  std::string path;
  GateOptions options;
  bool have_size = false;
  std::vector<std::pair<std::string, std::string>> ranges;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      gate_create_usage(stdout);
      return 0;
    }
    bool takes_value = arg == "--disk-size" || arg == "--grain" || arg == "--mode" ||
                       arg == "--add" || arg == "--clear";
    if (takes_value && i + 1 >= argc) {
      std::fprintf(stderr, "gate-create: %s needs a value\n", arg.c_str());
      return 2;
    }
    if (arg == "--disk-size") {
      if (!parse_size(argv[++i], &options.disk_size)) {
        std::fprintf(stderr, "gate-create: bad --disk-size '%s'\n", argv[i]);
        return 2;
      }
      have_size = true;
    } else if (arg == "--grain") {
      uint64_t grain = 0;
      if (!parse_size(argv[++i], &grain) || grain > UINT32_MAX) {
        std::fprintf(stderr, "gate-create: bad --grain '%s'\n", argv[i]);
        return 2;
      }
      options.grain_size = static_cast<uint32_t>(grain);
    } else if (arg == "--mode") {
      if (!parse_gate_mode(argv[++i], &options.mode)) {
        std::fprintf(stderr, "gate-create: --mode is pass-all, drop-all or set, not '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--add" || arg == "--clear") {
      ranges.emplace_back(arg, argv[++i]);
    } else if (path.empty() && arg[0] != '-') {
      path = arg;
    } else {
      std::fprintf(stderr, "gate-create: unexpected argument '%s'\n", arg.c_str());
      gate_create_usage(stderr);
      return 2;
    }
  }
  if (path.empty() || !have_size) {
    gate_create_usage(stderr);
    return 2;
  }
  std::unique_ptr<Gate> gate;
  if (Status s = Gate::create(path, options, &gate); !s) {
    std::fprintf(stderr, "gate-create: %s\n", s.message().c_str());
    return 1;
  }
  if (!ranges.empty()) {
    for (const auto& [flag, value] : ranges) {
      if (!apply_range(*gate, flag, value)) return 1;
    }
    if (Status s = gate->publish(); !s) {
      std::fprintf(stderr, "gate-create: %s\n", s.message().c_str());
      return 1;
    }
  }
  std::printf("generation: %llu\n", static_cast<unsigned long long>(gate->generation()));
  return 0;
}

}  // namespace dsvmi::cli
