// dsvmi gate-set PATH [--mode M] [--clear-all] [--add OFF:LEN]... [--clear OFF:LEN]...
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "dsvmi/gate_writer.h"
#include "gate_args.h"

namespace dsvmi::cli {

namespace {

void gate_set_usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi gate-set PATH [--mode pass-all|drop-all|set] [--clear-all]\n"
               "                      [--add OFF:LEN]... [--clear OFF:LEN]...\n"
               "Takes over the gate (fails while another writer, e.g. the engine, holds it),\n"
               "applies --clear-all, then the ranges in order, and publishes one generation.\n");
}

}  // namespace

int cmd_gate_set(int argc, char** argv) {
  std::string path;
  bool clear_all = false, have_mode = false;
  GateMode mode = GateMode::kSet;
  std::vector<std::pair<std::string, std::string>> ranges;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      gate_set_usage(stdout);
      return 0;
    }
    if ((arg == "--mode" || arg == "--add" || arg == "--clear") && i + 1 >= argc) {
      std::fprintf(stderr, "gate-set: %s needs a value\n", arg.c_str());
      return 2;
    }
    if (arg == "--mode") {
      if (!parse_gate_mode(argv[++i], &mode)) {
        std::fprintf(stderr, "gate-set: --mode is pass-all, drop-all or set, not '%s'\n", argv[i]);
        return 2;
      }
      have_mode = true;
    } else if (arg == "--clear-all") {
      clear_all = true;
    } else if (arg == "--add" || arg == "--clear") {
      ranges.emplace_back(arg, argv[++i]);
    } else if (path.empty() && arg[0] != '-') {
      path = arg;
    } else {
      std::fprintf(stderr, "gate-set: unexpected argument '%s'\n", arg.c_str());
      gate_set_usage(stderr);
      return 2;
    }
  }
  if (path.empty()) {
    gate_set_usage(stderr);
    return 2;
  }
  std::unique_ptr<Gate> gate;
  if (Status s = Gate::open(path, &gate); !s) {
    std::fprintf(stderr, "gate-set: %s\n", s.message().c_str());
    return 1;
  }
  if (have_mode) gate->set_mode(mode);
  if (clear_all) (void)gate->clear_grains({0, gate->grain_count()});
  for (const auto& [flag, value] : ranges) {
    if (!apply_range(*gate, flag, value)) return 1;
  }
  if (Status s = gate->publish(); !s) {
    std::fprintf(stderr, "gate-set: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("generation: %llu\n", static_cast<unsigned long long>(gate->generation()));
  return 0;
}

}  // namespace dsvmi::cli
