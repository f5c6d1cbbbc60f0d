// The subcommands of build/dsvmi. Each lives in its own cmd_*.cc file and is
// listed once in main.cc's table.
#pragma once

namespace dsvmi::cli {

// Every command gets the arguments after its own name and returns the
// process exit code (0 ok, 1 failure the user can act on, 2 usage error).
using CommandFn = int (*)(int argc, char** argv);

int cmd_bench(int argc, char** argv);
int cmd_capture(int argc, char** argv);
int cmd_crawl(int argc, char** argv);
int cmd_ls(int argc, char** argv);
int cmd_stat(int argc, char** argv);
int cmd_replay(int argc, char** argv);
int cmd_gate_create(int argc, char** argv);
int cmd_gate_set(int argc, char** argv);
int cmd_gate_stat(int argc, char** argv);
int cmd_ring_create(int argc, char** argv);
int cmd_ring_stat(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_version(int argc, char** argv);
int cmd_daemon(int argc, char** argv);
int cmd_attach(int argc, char** argv);
int cmd_detach(int argc, char** argv);
int cmd_status(int argc, char** argv);
int cmd_policy(int argc, char** argv);
int cmd_watch(int argc, char** argv);

}  // namespace dsvmi::cli
