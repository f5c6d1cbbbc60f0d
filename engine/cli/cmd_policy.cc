// dsvmi policy set NAME FILE: apply a policy live (the engine re-reads it on
// SIGHUP and republishes the gate; no restart, no detach).
// dsvmi policy explain NAME|--image IMAGE FILE: what the policy would pass,
// computed by crawling the disk into a scratch index and gate (nothing live
// changes).
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "usage.h"
#include "daemon_client.h"
#include "json_output.h"
#include "policy_file.h"

namespace dsvmi::cli {

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// What the crawl of `image` with `policy` would put into the gate: the
// crawl's summary and gate records (docs/cli-json.md) into one record.
Status explain_record(const std::string& image, const Json& policy, Json* out) {
  *out = Json(Json::Object{});
  out->set("policy", "explain");
  out->set("image", image);
  out->set("mode", policy.get_string("mode", "low-overhead"));
  if (policy.get_string("mode", "low-overhead") == "full") {
    out->set("passes_fraction", 1.0);
    return Status::ok();
  }
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return Status::error("cannot find the dsvmi binary (/proc/self/exe)");
  exe[n] = 0;
  std::string scratch = "/dev/shm/dsvmi-explain-" + std::to_string(::getpid());
  std::string cmd = shell_quote(exe) + " crawl --json " + shell_quote(image) + " --index " +
                    shell_quote(scratch + ".index") + " --gate " + shell_quote(scratch + ".gate");
  const Json* globs = policy.get("globs");
  if (!globs || globs->as_array().empty()) cmd += " --policy metadata";
  else
    for (const auto& g : globs->as_array()) cmd += " --glob " + shell_quote(g.as_string());
  FILE* p = ::popen(cmd.c_str(), "r");
  Json summary, gate;
  std::string error;
  char buf[65536];
  while (p && std::fgets(buf, sizeof buf, p)) {
    Json rec;
    if (!Json::parse(buf, &rec) || !rec.is_object()) continue;
    std::string kind = rec.get_string("crawl");
    if (kind == "summary") summary = rec;
    else if (kind == "gate") gate = rec;
    else if (kind == "error") error = rec.get_string("error");
  }
  int st = p ? ::pclose(p) : -1;
  ::unlink((scratch + ".index").c_str());
  ::unlink((scratch + ".gate").c_str());
  if (st != 0 || !summary.is_object() || !gate.is_object())
    return Status::error("crawl of " + image + " failed: " + (error.empty() ? "exit status " + std::to_string(st) : error));
  const Json* fss = summary.get("file_systems");
  if (!fss || fss->as_array().empty())
    return Status::error("no supported file system on " + image + " (dsvmi watches ext2/3/4 and FAT12/16/32)");
  uint64_t disk = summary.get_uint64("disk_size"), bytes = gate.get_uint64("grains") * gate.get_uint64("grain_size");
  out->set("disk_size", disk);
  out->set("passes_bytes", bytes);
  out->set("passes_fraction", disk ? double(bytes) / double(disk) : 0.0);
  out->set("gate", gate);
  return Status::ok();
}

int explain(const std::string& image, const Json& policy, bool json) {
  Json r;
  if (Status s = explain_record(image, policy, &r); !s) {
    std::fprintf(stderr, "dsvmi policy: %s\n", s.message().c_str());
    return 1;
  }
  if (json) {
    print_record(r);
    return 0;
  }
  const Json* g = r.get("gate");
  if (!g) {
    std::printf("mode full: the gate passes every write (100%% of %s)\n", image.c_str());
    return 0;
  }
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("policy %s, %llu grains of %llu bytes set (metadata blocks %llu, data blocks %llu of %llu files)\n",
              g->get_string("policy").c_str(), u(g->get_uint64("grains")), u(g->get_uint64("grain_size")),
              u(g->get_uint64("metadata_blocks")), u(g->get_uint64("data_blocks")), u(g->get_uint64("matched_files")));
  std::printf("passes %.2f%% of the disk (%llu of %llu bytes); every other write is dropped\n",
              100.0 * r.get_number("passes_fraction"), u(r.get_uint64("passes_bytes")), u(r.get_uint64("disk_size")));
  return 0;
}

constexpr char kUsage[] =
    "usage: dsvmi policy set NAME FILE [--json] [--socket DAEMON]\n"
    "       dsvmi policy explain NAME|--image IMAGE FILE [--json] [--socket DAEMON]\n"
    "--json: the daemon's reply / one explain record (docs/cli-json.md)\n"
    "FILE: docs/policy.md (mode, glob = PATTERN lines, ...)\n";

}  // namespace

int cmd_policy(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  const bool json = take_flag(&argc, argv, "--json");
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
    if (!image.empty()) return explain(image, policy, json);
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
  if (json) {
    print_record(r);
    return 0;
  }
  const Json* globs = r.get("globs");
  std::printf("policy of %s: mode %s, globs %s (generation %lld, applied live in %.3f s, gate %lld grains)\n",
              r.get_string("name").c_str(), r.get_string("mode").c_str(), globs ? globs->dump().c_str() : "[]",
              (long long)r.get_number("generation"), r.get_number("seconds"),
              r.get("engine") ? (long long)r.get("engine")->get_number("gate_grains") : 0LL);
  return 0;
}

}  // namespace dsvmi::cli
