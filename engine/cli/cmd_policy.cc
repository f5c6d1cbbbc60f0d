// dsvmi policy set NAME FILE: apply a policy live (gate republished, no detach).
#include <cstdio>
#include <string>

#include "commands.h"
#include "daemon_client.h"
#include "policy_file.h"

namespace dsvmi::cli {

int cmd_policy(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  if (argc != 3 || std::string(argv[0]) != "set") {
    std::fprintf(stderr, "usage: dsvmi policy set NAME FILE [--socket DAEMON]\n"
                         "FILE: docs/policy.md (mode, glob = PATTERN lines, ...)\n");
    return 2;
  }
  Json policy;
  if (Status s = load_policy_file(argv[2], &policy); !s) {
    std::fprintf(stderr, "dsvmi policy: %s\n", s.message().c_str());
    return 1;
  }
  Json args = policy;
  args.set("name", argv[1]);
  Json r;
  if (int rc = call_or_report("policy", socket, "policy-set", args, &r)) return rc;
  std::printf("policy of %s: mode %s, globs %s\n", r.get_string("name").c_str(), r.get_string("mode").c_str(),
              r.get("globs")->dump().c_str());
  return 0;
}

}  // namespace dsvmi::cli
