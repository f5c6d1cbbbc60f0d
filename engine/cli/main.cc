// build/dsvmi: the single command-line tool of dsvmi.
#include <cstdio>
#include <cstring>

#include "commands.h"

namespace {

struct Command {
  const char* name;
  dsvmi::cli::CommandFn fn;
  const char* summary;
};

// One row per subcommand; keep sorted by name.
constexpr Command kCommands[] = {
    {"attach", dsvmi::cli::cmd_attach, "insert dsvmi into a running VM's disk via the daemon (QMP)"},
    {"bench", dsvmi::cli::cmd_bench, "run the end-to-end overhead benchmarks (bench/e2e/run.py)"},
    {"capture", dsvmi::cli::cmd_capture, "drain a ring into a trace file while a guest runs"},
    {"crawl", dsvmi::cli::cmd_crawl, "crawl a disk image's partitions and file systems into an index"},
    {"daemon", dsvmi::cli::cmd_daemon, "serve attach/detach/status/policy/watch on a Unix socket"},
    {"detach", dsvmi::cli::cmd_detach, "remove dsvmi from a VM's disk (filter first), free its ring/gate"},
    {"gate-create", dsvmi::cli::cmd_gate_create, "create a drop-data gate file for QEMU's dsvmi filter"},
    {"gate-set", dsvmi::cli::cmd_gate_set, "change a gate's mode/ranges and publish a generation"},
    {"gate-stat", dsvmi::cli::cmd_gate_stat, "show a gate's published generation and reader counters"},
    {"ls", dsvmi::cli::cmd_ls, "list a directory as crawled into an index"},
    {"policy", dsvmi::cli::cmd_policy, "apply a policy file to an attached disk, live"},
    {"replay", dsvmi::cli::cmd_replay, "apply a capture trace to a raw disk image"},
    {"ring-create", dsvmi::cli::cmd_ring_create, "create a shared-memory write ring for QEMU's dsvmi filter"},
    {"ring-stat", dsvmi::cli::cmd_ring_stat, "show a ring's geometry, indices, counters and lost range"},
    {"run", dsvmi::cli::cmd_run, "infer file-level events (JSON Lines) from a trace or a live ring"},
    {"stat", dsvmi::cli::cmd_stat, "show an inode (names, extents) or a block's owner from an index"},
    {"status", dsvmi::cli::cmd_status, "show each attached disk: mode, gate, ring, engine"},
    {"version", dsvmi::cli::cmd_version, "print the dsvmi version and the ABI versions it speaks"},
    {"watch", dsvmi::cli::cmd_watch, "stream file events of attached disks ('host:vm:/var/log/**')"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: dsvmi <command> [args...]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'dsvmi <command> --help' describes a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (!std::strcmp(argv[1], c.name)) return c.fn(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "dsvmi: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
