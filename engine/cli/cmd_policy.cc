// dsvmi policy set NAME FILE: apply a policy live (the engine re-reads it on
// SIGHUP and republishes the gate; no restart, no detach).
// dsvmi policy explain NAME|--image IMAGE FILE: what the policy would pass,
// computed by crawling the disk into a scratch index and gate (nothing live
// changes).
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"
#include "usage.h"
#include "daemon_client.h"
#include "policy_file.h"

namespace dsvmi::cli {

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int explain(const std::string& image, const Json& policy) {
  if (policy.get_string("mode", "low-overhead") == "full") {
    std::printf("mode full: the gate passes every write (100%% of %s)\n", image.c_str());
    return 0;
  }
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 1;
  exe[n] = 0;
  std::string scratch = "/dev/shm/dsvmi-explain-" + std::to_string(::getpid());
  std::string cmd = shell_quote(exe) + " crawl " + shell_quote(image) + " --index " + shell_quote(scratch + ".index") +
                    " --gate " + shell_quote(scratch + ".gate");
  const Json* globs = policy.get("globs");
  if (!globs || globs->as_array().empty()) cmd += " --policy metadata";
  else
    for (const auto& g : globs->as_array()) cmd += " --glob " + shell_quote(g.as_string());
  cmd += " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  int st = p ? ::pclose(p) : -1;
  ::unlink((scratch + ".index").c_str());
  ::unlink((scratch + ".gate").c_str());
  if (st != 0) {
    std::fprintf(stderr, "dsvmi policy: crawl of %s failed: %s", image.c_str(), out.c_str());
    return 1;
  }
  if (out.find("total        0 file system(s)") != std::string::npos) {
    std::fprintf(stderr, "dsvmi policy: no supported file system on %s (dsvmi watches ext2/3/4)\n", image.c_str());
    return 1;
  }
  // The crawl's own gate line says what passes and why.
  size_t g = out.find("\ngate ");
  std::string why = g == std::string::npos ? out : out.substr(g + 1);
  unsigned long long grains = 0, grain = 4096, disk = 0;
  std::sscanf(why.c_str(), "gate %*s policy %*s %llu grains of %llu bytes", &grains, &grain);
  size_t d = out.find("bytes), partition");
  if (size_t o = out.rfind('(', d); d != std::string::npos && o != std::string::npos) disk = std::strtoull(out.c_str() + o + 1, nullptr, 10);
  std::printf("%s", why.c_str());
  if (disk) std::printf("passes %.2f%% of the disk (%llu of %llu bytes); every other write is dropped\n",
                        100.0 * double(grains * grain) / double(disk), grains * grain, disk);
  return 0;
}

constexpr char kUsage[] =
    "usage: dsvmi policy set NAME FILE [--socket DAEMON]\n"
    "       dsvmi policy explain NAME|--image IMAGE FILE [--socket DAEMON]\n"
    "FILE: docs/policy.md (mode, glob = PATTERN lines, ...)\n";

}  // namespace

int cmd_policy(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  if (wants_help(argc, argv)) return usage_exit(true, kUsage);
  if (argc >= 3 && std::string(argv[0]) == "explain") {
    std::string image, file;
    if (argc == 4 && std::string(argv[1]) == "--image") {
      image = argv[2];
      file = argv[3];
    } else if (argc == 3) {
      Json args(Json::Object{}), r;
      args.set("name", argv[1]);
      if (int rc = call_or_report("policy", socket, "status", args, &r)) return rc;
      image = r.as_array().empty() ? "" : r.as_array()[0].get_string("image");
      file = argv[2];
    }
    Json policy;
    if (Status s = load_policy_file(file, &policy); !s) {
      std::fprintf(stderr, "dsvmi policy: %s\n", s.message().c_str());
      return 1;
    }
    if (!image.empty()) return explain(image, policy);
  }
  if (argc != 3 || std::string(argv[0]) != "set") return usage_exit(false, kUsage);
  Json policy;
  if (Status s = load_policy_file(argv[2], &policy); !s) {
    std::fprintf(stderr, "dsvmi policy: %s\n", s.message().c_str());
    return 1;
  }
  Json args = policy;
  args.set("name", argv[1]);
  // A file is a whole policy: no globs in it means none (metadata only).
  if (!args.get("globs")) args.set("globs", Json(Json::Array{}));
  if (!args.get("mode")) args.set("mode", "low-overhead");
  Json r;
  if (int rc = call_or_report("policy", socket, "policy-set", args, &r)) return rc;
  const Json* globs = r.get("globs");
  std::printf("policy of %s: mode %s, globs %s (generation %lld, applied live in %.3f s, gate %lld grains)\n",
              r.get_string("name").c_str(), r.get_string("mode").c_str(), globs ? globs->dump().c_str() : "[]",
              (long long)r.get_number("generation"), r.get_number("seconds"),
              r.get("engine") ? (long long)r.get("engine")->get_number("gate_grains") : 0LL);
  return 0;
}

}  // namespace dsvmi::cli
