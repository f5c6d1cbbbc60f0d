// The QMP steps of attach and detach. Each returns a Status whose class is
// the protocol's error class (QmpError, NodeNotFound, Unsupported, ...);
// the undo steps note what they could not do in `problems` instead.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "daemon_impl.h"

namespace dsvmi::daemon_internal {

namespace {

Status qmp_error(const std::string& what, const Status& s) { return Status::error("QmpError", what + ": " + s.message()); }

Json object() { return Json(Json::Object{}); }

}  // namespace

// Finds the node, its image and size, the device whose drive it is (taking
// out a dead daemon's filter above it), and how the disk will be read.
Status Daemon::probe_node(QmpClient& q, Attachment& a, const std::string& read_via, bool* via_nbd, std::string* drv) {
  Json nodes, blocks;
  if (Status s = q.execute("query-named-block-nodes", object(), &nodes); !s) return qmp_error("query-named-block-nodes", s);
  if (!nodes.is_array()) return Status::error("QmpError", "query-named-block-nodes returned no list");
  const Json* node = nullptr;
  std::string names;
  for (const auto& n : nodes.as_array()) {
    names += (names.empty() ? "" : ", ") + n.get_string("node-name");
    if (n.get_string("node-name") == a.node) node = &n;
  }
  if (!node) return Status::error("NodeNotFound", "node '" + a.node + "' not found in this VM (its nodes: " + names + ")");
  *drv = node->get_string("drv");
  if (*drv == "dsvmi") return Status::error("AlreadyAttached", "node '" + a.node + "' is a dsvmi filter itself");
  a.image = node->get_string("file");
  if (const Json* img = node->get("image")) a.disk_size = img->get_uint64("virtual-size");
  if (a.disk_size == 0) return Status::error("QmpError", "node '" + a.node + "' reports no virtual size");
  // A raw image (or a plain file node) is crawled from its file; anything
  // else (qcow2, backing chains, a json: file name) through QEMU's NBD server.
  struct stat st;
  bool plain = (*drv == "raw" || *drv == "file") && !a.image.empty() && a.image.rfind("json:", 0) != 0 &&
               ::stat(a.image.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
  if (read_via == "file" && !plain)
    return Status::error("Unsupported", "node '" + a.node + "' is a " + *drv + " node on '" + a.image +
                                            "'; it cannot be read as a raw file (attach with read auto or nbd)");
  *via_nbd = read_via == "nbd" || !plain;

  if (Status s = q.execute("query-block", object(), &blocks); !s) return qmp_error("query-block", s);
  if (blocks.is_array())
    for (const auto& b : blocks.as_array()) {
      const Json* ins = b.get("inserted");
      if (ins && ins->get_string("node-name") == a.node) a.device = b.get_string("qdev");
    }
  if (a.device.empty())
    if (Status s = remove_stale_filter(q, a.qmp, blocks, a.node, &a.device, &a.replaced_filter); !s) return s;
  if (a.device.empty())
    return Status::error("NodeNotFound", "no device's drive is node '" + a.node +
                                             "' (attach to the top node of a device: query-block's inserted.node-name)");
  return Status::ok();
}

// The device's drive is not `node` but a dsvmi filter above it: left by a
// daemon that died (its pid, in the filter's name "dsvmi-PID-N", is gone), it
// is taken out (device back on the node, filter and its NBD export deleted)
// and its name returned in *replaced; one of a live daemon (another, or this
// one) is refused. The parent/child edge comes from x-debug-query-block-graph.
Status Daemon::remove_stale_filter(QmpClient& q, const std::string& qmp, const Json& blocks, const std::string& node,
                                   std::string* device, std::string* replaced) {
  std::map<std::string, std::string> filters;  // filter node -> device
  if (blocks.is_array())
    for (const auto& b : blocks.as_array())
      if (const Json* ins = b.get("inserted"); ins && ins->get_string("drv") == "dsvmi")
        filters[ins->get_string("node-name")] = b.get_string("qdev");
  if (filters.empty()) return Status::ok();
  Json graph;
  if (!q.execute("x-debug-query-block-graph", object(), &graph) || !graph.is_object()) return Status::ok();
  std::map<uint64_t, std::string> names;
  if (const Json* ns = graph.get("nodes"); ns && ns->is_array())
    for (const auto& n : ns->as_array()) names[n.get_uint64("id")] = n.get_string("name");
  const Json* edges = graph.get("edges");
  if (!edges || !edges->is_array()) return Status::ok();
  for (const auto& e : edges->as_array()) {
    std::string parent = names[e.get_uint64("parent")], child = names[e.get_uint64("child")];
    auto f = filters.find(parent);
    if (f == filters.end() || child != node) continue;
    for (auto& [n, a] : atts_)
      if (a.filter_node == parent)
        return Status::error("AlreadyAttached", "node '" + node + "' is already attached as '" + n + "'");
    long pid = 0;
    if (std::sscanf(parent.c_str(), "dsvmi-%ld-", &pid) != 1 || pid <= 0)
      return Status::error("AlreadyAttached", "node '" + node + "' is behind a dsvmi filter '" + parent +
                                                  "' of another dsvmi daemon (detach it there)");
    if (pid == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH)
      return Status::error("AlreadyAttached", "node '" + node + "' is attached by the dsvmi daemon with pid " +
                                                  std::to_string(pid) + " (filter '" + parent + "'; detach it there)");
    std::string what = "removing the stale filter '" + parent + "' of a dead daemon: ";
    Json r, set = object(), del = object(), exp = object();
    set.set("path", f->second);
    set.set("property", "drive");
    set.set("value", node);
    if (Status s = q.execute("qom-set", set, &r); !s) return qmp_error(what + "qom-set", s);
    del.set("node-name", parent);
    if (Status s = q.execute("blockdev-del", del, &r); !s) return qmp_error(what + "blockdev-del", s);
    exp.set("id", parent + "-export");
    exp.set("mode", "hard");
    if (q.execute("block-export-del", exp, &r)) {
      // It had one: the NBD server was the dead daemon's; stop it if it now
      // serves nothing (its socket path died with that daemon).
      Json exports;
      if (q.execute("query-block-exports", object(), &exports) && exports.is_array() && exports.as_array().empty() &&
          !nbd_.count(qmp))
        q.execute("nbd-server-stop", object(), &r);
    }
    std::fprintf(stderr, "dsvmi daemon: removed the stale filter %s of dead daemon %ld from %s\n", parent.c_str(), pid,
                 f->second.c_str());
    *device = f->second;
    *replaced = parent;
    return Status::ok();
  }
  return Status::ok();
}

// A read-only NBD export of the node through QEMU's NBD server (started for
// the first such attach of this VM); a.disk becomes its nbd+unix:// URL.
Status Daemon::export_over_nbd(QmpClient& q, Attachment& a, const std::string& drv) {
  Json r;
  NbdServer& srv = nbd_[a.qmp];
  if (srv.socket.empty()) {
    srv.socket = opt_.state_dir + "/nbd-" + std::to_string(::getpid()) + "-" + std::to_string(next_id_) + ".sock";
    Json addr = object(), data = object(), start = object();
    data.set("path", srv.socket);
    addr.set("type", "unix");
    addr.set("data", data);
    start.set("addr", addr);
    if (Status s = q.execute("nbd-server-start", start, &r); !s) {
      nbd_.erase(a.qmp);
      if (s.message().find("already running") != std::string::npos)
        return Status::error("Unsupported", "node '" + a.node + "' (" + drv +
                                                ") must be read through QEMU's NBD server, but this QEMU already runs one "
                                                "that dsvmi did not start (nbd-server-stop it, or attach a raw image)");
      return qmp_error("nbd-server-start", s);
    }
    srv.ours = true;
  }
  a.nbd_socket = srv.socket;
  a.export_id = a.filter_node + "-export";
  Json exp = object();
  exp.set("type", "nbd");
  exp.set("id", a.export_id);
  exp.set("node-name", a.node);
  exp.set("name", a.export_id);
  exp.set("writable", false);
  if (Status s = q.execute("block-export-add", exp, &r); !s) {
    a.export_id.clear();
    if (srv.ours && srv.exports == 0) {  // started for this attach only
      Json ignored;
      q.execute("nbd-server-stop", object(), &ignored);
      ::unlink(srv.socket.c_str());
      nbd_.erase(a.qmp);
    }
    return qmp_error("block-export-add of node '" + a.node + "' (to read the " + drv + " disk over NBD)", s);
  }
  ++srv.exports;
  a.disk = "nbd+unix:///" + a.export_id + "?socket=" + srv.socket;
  return Status::ok();
}

// The filter node above the node, then the device's drive onto it.
Status Daemon::insert_filter(QmpClient& q, Attachment& a) {
  Json r, add = object();
  add.set("driver", "dsvmi");
  add.set("node-name", a.filter_node);
  add.set("file", a.node);
  add.set("ring", a.ring);
  add.set("gate", a.gate);
  add.set("discard", "unmap");
  if (Status s = q.execute("blockdev-add", add, &r); !s) {
    if (s.message().find("'dsvmi'") != std::string::npos)
      return Status::error("UnpatchedQemu", "this QEMU has no dsvmi filter driver (" + s.message() +
                                                "): run the patched QEMU built by qemu-patches/build.sh");
    return qmp_error("blockdev-add of the filter", s);
  }
  Json set = object();
  set.set("path", a.device);
  set.set("property", "drive");
  set.set("value", a.filter_node);
  if (Status s = q.execute("qom-set", set, &r); !s) {
    Json del = object();
    del.set("node-name", a.filter_node);
    q.execute("blockdev-del", del, &r);
    return qmp_error("qom-set " + a.device + " drive", s);
  }
  return Status::ok();
}

// Filter out of the guest's path (docs/daemon-protocol.md, "Detach"): the
// device back on the node, the filter node deleted. Works with QEMU gone
// (a problem is noted).
void Daemon::unplug_filter(Attachment& a, std::vector<std::string>* problems, QmpClient* open) {
  QmpClient own;
  QmpClient& q = open ? *open : own;
  if (Status s = open ? Status::ok() : own.connect(a.qmp); !s) {
    problems->push_back("QMP " + a.qmp + ": " + s.message() + " (VM gone? filter removal skipped)");
    return;
  }
  Json r, set = object();
  set.set("path", a.device);
  set.set("property", "drive");
  set.set("value", a.node);
  if (Status s2 = q.execute("qom-set", set, &r); !s2) problems->push_back("qom-set back: " + s2.message());
  Json del = object();
  del.set("node-name", a.filter_node);
  if (Status s2 = q.execute("blockdev-del", del, &r); !s2) problems->push_back("blockdev-del: " + s2.message());
}

// The NBD export (after the engine is gone: it reads blocks back through it),
// and our NBD server once it serves nothing of ours.
void Daemon::remove_export(Attachment& a, std::vector<std::string>* problems, QmpClient* open) {
  if (a.export_id.empty()) return;
  QmpClient own;
  QmpClient& q = open ? *open : own;
  auto srv = nbd_.find(a.qmp);
  bool last = srv != nbd_.end() && --srv->second.exports <= 0 && srv->second.ours;
  if (Status s = open ? Status::ok() : own.connect(a.qmp); !s) {
    problems->push_back("QMP " + a.qmp + ": " + s.message() + " (VM gone? NBD export removal skipped)");
    if (srv != nbd_.end() && srv->second.exports <= 0) nbd_.erase(srv);
    a.export_id.clear();
    return;
  }
  Json r, del = object();
  del.set("id", a.export_id);
  del.set("mode", "hard");
  if (Status s2 = q.execute("block-export-del", del, &r); !s2) problems->push_back("block-export-del: " + s2.message());
  if (last) {
    if (Status s2 = q.execute("nbd-server-stop", object(), &r); !s2) problems->push_back("nbd-server-stop: " + s2.message());
    ::unlink(srv->second.socket.c_str());
  }
  if (srv != nbd_.end() && srv->second.exports <= 0) nbd_.erase(srv);
  a.export_id.clear();
}

void Daemon::remove_files(Attachment& a) {
  for (const std::string* f : {&a.ring, &a.gate, &a.index, &a.policy_file}) ::unlink(f->c_str());
  ::unlink((a.policy_file + ".tmp").c_str());
}

}  // namespace dsvmi::daemon_internal
