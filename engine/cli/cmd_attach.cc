// dsvmi attach: insert the filter into a running VM's disk and start watching.
#include <cstdio>
#include <string>

#include "commands.h"
#include "usage.h"
#include "daemon_client.h"
#include "policy_file.h"

namespace dsvmi::cli {

int cmd_attach(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  Json args(Json::Object{});
  std::string policy_path;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--qmp" && i + 1 < argc) args.set("qmp", argv[++i]);
    else if (a == "--node" && i + 1 < argc) args.set("node", argv[++i]);
    else if (a == "--name" && i + 1 < argc) args.set("name", argv[++i]);
    else if (a == "--mode" && i + 1 < argc) args.set("mode", argv[++i]);
    else if (a == "--policy" && i + 1 < argc) policy_path = argv[++i];
    else if (a == "--read" && i + 1 < argc) args.set("read", argv[++i]);
    else {
      std::fprintf(is_help_arg(a.c_str()) ? stdout : stderr,
                   "usage: dsvmi attach --qmp SOCKET --node NODE [--name HOST:VM:DISK]\n"
                   "                    [--policy FILE | --mode low-overhead|full] [--read auto|file|nbd]\n"
                   "                    [--socket DAEMON]\n"
                   "Inserts the dsvmi filter above NODE (query-named-block-nodes) of the running VM\n"
                   "whose QMP socket is SOCKET, crawls the disk and starts its engine (docs/user-guide.md).\n"
                   "--read: how the crawl and engine read the disk: the image file (raw images) or an NBD\n"
                   "export of NODE by QEMU itself (any format); auto picks the file when NODE is raw.\n");
      return is_help_arg(a.c_str()) ? 0 : 2;
    }
  }
  if (!args.get("qmp") || !args.get("node")) {
    std::fprintf(stderr, "dsvmi attach: --qmp and --node are required\n");
    return 2;
  }
  if (!policy_path.empty()) {
    Json policy;
    if (Status s = load_policy_file(policy_path, &policy); !s) {
      std::fprintf(stderr, "dsvmi attach: %s\n", s.message().c_str());
      return 1;
    }
    for (const auto& [k, v] : policy.as_object()) args.set(k, v);
  }
  Json r;
  if (int rc = call_or_report("attach", socket, "attach", args, &r)) return rc;
  std::string disk = r.get_string("disk");
  std::printf("attached %s: filter %s on %s (image %s%s%s), engine pid %lld, crawl %.1f s\n", r.get_string("name").c_str(),
              r.get_string("filter_node").c_str(), r.get_string("device").c_str(), r.get_string("image").c_str(),
              disk.rfind("nbd", 0) == 0 ? ", read via " : "", disk.rfind("nbd", 0) == 0 ? disk.c_str() : "",
              (long long)r.get_number("engine_pid"), r.get_number("crawl_seconds"));
  if (!r.get_string("replaced_stale_filter").empty())
    std::printf("  note: removed the stale filter %s a dead dsvmi daemon had left in the VM\n",
                r.get_string("replaced_stale_filter").c_str());
  return 0;
}

int cmd_detach(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  if (argc != 1 || argv[0][0] == '-') {
    return usage_exit(wants_help(argc, argv),
                      "usage: dsvmi detach NAME [--socket DAEMON]\n"
                      "Removes the filter from the VM first, then stops the engine and frees the ring and gate.\n");
  }
  Json args(Json::Object{}), r;
  args.set("name", argv[0]);
  if (int rc = call_or_report("detach", socket, "detach", args, &r)) return rc;
  std::printf("detached %s in %.3f s (%lld events)\n", r.get_string("name").c_str(), r.get_number("seconds"),
              (long long)r.get_number("events"));
  for (const auto& p : r.get("problems") ? r.get("problems")->as_array() : Json::Array{})
    std::printf("  warning: %s\n", p.as_string().c_str());
  return 0;
}

}  // namespace dsvmi::cli
