"""Seeded random guest workloads for the ordering tests: busybox shell
commands on one directory per seed (mkdir/rmdir trees, create/unlink,
renames within and across directories, renames over existing names, name
swaps, parent/child directory swaps, hard links, symlinks, chmod/chown,
truncate, writes, and "remove a tree, then create in a new directory" bursts
that hand freed inode numbers straight back). A model of the tree follows
every command, so each command is valid when it runs (the workload runs
under `sh -e`) and the expected final tree is known."""

import random

NAMES = "abcdefgh"
LONG_TARGET = "/nonexistent/symlink/target/that/is/certainly/longer/than/sixty/bytes/so/it/gets/a/block"


class _Node:
    def __init__(self, kind):
        self.kind = kind  # "dir", "file", "symlink"
        self.children = {} if kind == "dir" else None


class Workload:
    """One seed's directory `top` (relative to the file system root)."""

    def __init__(self, seed, top, ops):
        self.rng = random.Random(seed)
        self.top = top
        self.root = _Node("dir")
        self.lines = []
        self.initial = {top: None}
        self.tmp = 0
        for _ in range(self.rng.randint(2, 5)):
            d = self.top + "/" + self.rng.choice(NAMES)
            self._initial_dir(d)
        for _ in range(ops):
            self.step()

    # -- the model ----------------------------------------------------------

    def _initial_dir(self, rel):
        node = self.root
        parts = rel.split("/")[1:]
        for p in parts:
            node = node.children.setdefault(p, _Node("dir"))
        self.initial[rel] = None
        for name in self.rng.sample(NAMES, self.rng.randint(0, 3)):
            if name not in node.children:
                node.children[name] = _Node("file")
                self.initial[f"{rel}/{name}"] = f"{rel}/{name} initial\n".encode() * self.rng.randint(1, 300)

    def entries(self):
        """[(path, node, parent node, name)] below the top directory."""
        out, todo = [], [(self.top, self.root)]
        while todo:
            path, node = todo.pop()
            for name, child in sorted(node.children.items()):
                p = f"{path}/{name}"
                out.append((p, child, node, name))
                if child.kind == "dir":
                    todo.append((p, child))
        return out

    def dirs(self):
        return [(self.top, self.root)] + [(p, n) for p, n, _, _ in self.entries() if n.kind == "dir"]

    def lookup(self, path):
        node = self.root
        for p in path[len(self.top):].split("/")[1:]:
            node = node.children[p]
        return node

    def parent(self, path):
        return self.lookup(path.rsplit("/", 1)[0])

    @staticmethod
    def inside(path, ancestor):
        return path == ancestor or path.startswith(ancestor + "/")

    def tree(self):
        """{path: kind} of the final tree, paths absolute."""
        return {"/" + p: n.kind for p, n, _, _ in self.entries()} | {"/" + self.top: "dir"}

    # -- commands -----------------------------------------------------------

    def emit(self, line):
        self.lines.append(line)

    def free_name(self, dir_node):
        free = [c for c in NAMES if c not in dir_node.children]
        return self.rng.choice(free) if free else None

    def pick(self, kinds=("dir", "file", "symlink")):
        cands = [e for e in self.entries() if e[1].kind in kinds]
        return self.rng.choice(cands) if cands else None

    def new_entry(self, kind_cmd, kind):
        dpath, dnode = self.rng.choice(self.dirs())
        name = self.free_name(dnode)
        if name is None:
            return
        p = f"{dpath}/{name}"
        self.emit(kind_cmd(p))
        dnode.children[name] = _Node(kind)
        return p, dnode.children[name]

    def step(self):
        r = self.rng.random()
        if r < 0.03:
            self.emit("sync")
        elif r < 0.13:
            if self.rng.random() < 0.3:
                made = self.new_entry(lambda p: f"mkdir -p {p}/a/b", "dir")
                if made:
                    made[1].children["a"] = _Node("dir")
                    made[1].children["a"].children["b"] = _Node("dir")
            else:
                self.new_entry(lambda p: f"mkdir {p}", "dir")
        elif r < 0.25:
            n = self.rng.randint(1, 40)
            self.new_entry(lambda p: f"echo {p} > {p}" if n < 20 else
                           f"dd if=/dev/urandom of={p} bs=4096 count={n - 19} 2>/dev/null", "file")
        elif r < 0.30:
            f = self.pick(("file",))
            if f:
                self.emit(self.rng.choice([f"echo more >> {f[0]}", f"truncate -s {self.rng.randint(0, 70000)} {f[0]}"]))
        elif r < 0.35:
            e = self.pick(("file", "dir"))
            if e:
                self.emit(self.rng.choice([f"chmod {self.rng.choice(['600', '755', '4755', '700'])} {e[0]}",
                                           f"chown {self.rng.randint(0, 2000)}:{self.rng.randint(0, 200)} {e[0]}"]))
        elif r < 0.43:
            e = self.pick(("file", "symlink"))
            if e:
                self.emit(f"rm {e[0]}")
                del e[2].children[e[3]]
        elif r < 0.47:
            e = self.pick(("dir",))
            if e:
                self.emit(f"rm -r {e[0]}")
                del e[2].children[e[3]]
        elif r < 0.67:
            self.rename()
        elif r < 0.75:
            f = self.pick(("file",))
            if f:
                dpath, dnode = self.rng.choice(self.dirs())
                name = self.free_name(dnode)
                if name:
                    self.emit(f"ln {f[0]} {dpath}/{name}")
                    dnode.children[name] = f[1]
        elif r < 0.79:
            target = LONG_TARGET if self.rng.random() < 0.3 else f"/nonexistent/{self.rng.randint(0, 99)}"
            self.new_entry(lambda p: f"ln -s {target} {p}", "symlink")
        elif r < 0.90:
            self.swap()
        else:
            self.reuse_burst()

    def rename(self):
        e = self.pick()
        if not e:
            return
        src, node, sparent, sname = e
        dpath, dnode = self.rng.choice(self.dirs())
        if node.kind == "dir" and self.inside(dpath, src):
            return
        name = self.rng.choice(NAMES)
        victim = dnode.children.get(name)
        if victim is not None:
            # Over an existing name: only a non-directory over another one
            # (mv would move a directory into an existing directory).
            if node.kind == "dir" or victim.kind == "dir" or victim is node:
                return
        self.emit(f"mv -f {src} {dpath}/{name}")
        del sparent.children[sname]
        dnode.children[name] = node

    def _tmp(self):
        self.tmp += 1
        return f"{self.top}/tmp{self.tmp}"

    def swap(self):
        es = [e for e in self.entries()]
        if len(es) < 2:
            return
        a, b = self.rng.sample(es, 2)
        if self.inside(a[0], b[0]) or self.inside(b[0], a[0]):
            # A directory and a subdirectory of it trade places.
            outer, inner = (a, b) if self.inside(b[0], a[0]) else (b, a)
            if inner[2] is not outer[1] or inner[1].kind != "dir" or inner[3] in inner[1].children:
                return
            t = self._tmp()
            self.emit(f"mv {inner[0]} {t}; mv {outer[0]} {t}/{inner[3]}; mv {t} {outer[0]}")
            del outer[1].children[inner[3]]
            inner[1].children[inner[3]] = outer[1]
            outer[2].children[outer[3]] = inner[1]
            return
        if a[1] is b[1]:
            return
        t = self._tmp()
        self.emit(f"mv {a[0]} {t}; mv {b[0]} {a[0]}; mv {t} {b[0]}")
        a[2].children[a[3]], b[2].children[b[3]] = b[1], a[1]

    def reuse_burst(self):
        e = self.pick(("dir",))
        if e:
            self.emit(f"rm -r {e[0]}")
            del e[2].children[e[3]]
        made = self.new_entry(lambda p: f"mkdir {p}", "dir")
        if made:
            p, node = made
            for name in self.rng.sample(NAMES, self.rng.randint(1, 3)):
                self.emit(f"echo r > {p}/{name}")
                node.children[name] = _Node("file")


def workload_text(workloads, extra=""):
    """The guest script: a long journal commit interval (so many commands
    share one commit), no periodic writeback, then every workload."""
    lines = ["mount -o remount,commit=60 /mnt",
             "echo 0 > /proc/sys/vm/dirty_writeback_centisecs",
             "echo 60000 > /proc/sys/vm/dirty_expire_centisecs"]
    lines.append(extra)
    for w in workloads:
        lines += w.lines
    return "\n".join(lines) + "\n"
