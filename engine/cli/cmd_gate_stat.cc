// dsvmi gate-stat PATH: what is published and what the reader (QEMU) reports,
// one "key: value" per line.
#include <cstdio>
#include <string>

#include "commands.h"
#include "usage.h"
#include "dsvmi/gate_inspect.h"
#include "dsvmi/stat_json.h"
#include "json_output.h"

namespace dsvmi::cli {

int cmd_gate_stat(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  if (argc != 1 || argv[0][0] == '-') {
    return usage_exit(wants_help(argc, argv),
                      "usage: dsvmi gate-stat PATH [--json]\n"
                      "Validates the published generation of a gate file and prints it with the\n"
                      "reader's counters (counters and error are written by QEMU: informational).\n"
                      "--json: one JSON object instead (docs/cli-json.md).\n");
  }
  GateSnapshot s;
  if (Status st = inspect_gate(argv[0], &s); !st) {
    std::fprintf(stderr, "gate-stat: %s\n", st.message().c_str());
    return 1;
  }
  if (json) {
    print_record(gate_snapshot_json(argv[0], s));
    return 0;
  }
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("path: %s\n", argv[0]);
  std::printf("disk_size: %llu\n", u(s.disk_size));
  std::printf("grain_size: %u\n", s.grain_size);
  std::printf("generation: %llu\n", u(s.generation));
  std::printf("slot: %u of %u\n", s.slot, s.slots);
  std::printf("mode: %s\n", s.generation ? gate_mode_name(s.mode) : "none (nothing published)");
  std::printf("set_grains: %llu\n", u(s.set_grains));
  std::printf("set_bytes: %llu\n", u(s.set_grains * s.grain_size));
  std::printf("containers: %u\n", s.containers);
  std::printf("serialized_bytes: %llu\n", u(s.serialized_bytes));
  std::printf("flat_sector_bitmap_bytes: %llu\n", u((s.disk_size + 4095) / 4096));
  std::printf("file_size: %llu\n", u(s.file_size));
  if (s.reader_view == UINT64_MAX) {
    std::printf("reader_view: none\n");
  } else {
    std::printf("reader_view: generation %llu slot %llu\n", u(s.reader_view >> 8),
                u(s.reader_view & 0xff));
  }
  std::printf("writes_passed: %llu\n", u(s.counters.writes_passed));
  std::printf("bytes_passed: %llu\n", u(s.counters.bytes_passed));
  std::printf("writes_dropped: %llu\n", u(s.counters.writes_dropped));
  std::printf("bytes_dropped: %llu\n", u(s.counters.bytes_dropped));
  std::printf("fallbacks: %llu\n", u(s.counters.fallbacks));
  std::printf("rejected_generations: %llu\n", u(s.counters.rejected));
  std::printf("adoptions: %llu\n", u(s.counters.adoptions));
  if (!s.reader_error.empty()) {
    std::printf("reader_error: generation %llu: %s\n", u(s.error_generation), s.reader_error.c_str());
  } else {
    std::printf("reader_error: none\n");
  }
  return 0;
}

}  // namespace dsvmi::cli
