"""Host-side oracles for the inference tests: debugfs's view of an image
(tree with attributes, file contents via rdump) and a reference replay of the
engine's JSON events."""

import base64
import json
import re
import subprocess
import tempfile
from pathlib import Path


def _debugfs(image, request):
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True, errors="surrogateescape").stdout


def _type(mode):
    return {0o100000: "file", 0o040000: "dir", 0o120000: "symlink"}.get(mode & 0o170000, "other")


def debugfs_tree(image):
    """{path: {ino,type,mode,uid,gid,size,links,mtime_ns,target}} as debugfs
    sees the image (recursive `ls -p`, one batched `stat` run)."""
    tree = {"/": {"ino": 2, "type": "dir"}}
    dirs = [("/", 2)]
    while dirs:
        path, ino = dirs.pop()
        for line in _debugfs(image, f"ls -p <{ino}>").splitlines():
            if not line.startswith("/"):
                continue
            parts = line[1:-1].split("/")
            if len(parts) < 6:
                continue
            cino, mode, uid, gid = parts[0], parts[1], parts[2], parts[3]
            name, size = "/".join(parts[4:-1]), parts[-1]
            if name in (".", "..") or cino == "0":
                continue
            m = int(mode, 8)
            child = "/" + name if path == "/" else path + "/" + name
            tree[child] = {"ino": int(cino), "type": _type(m), "mode": m & 0o7777, "uid": int(uid),
                           "gid": int(gid), "size": int(size or 0)}
            if _type(m) == "dir":
                dirs.append((child, int(cino)))
    inos = sorted({e["ino"] for e in tree.values()})
    with tempfile.NamedTemporaryFile("w", suffix=".cmds", delete=False) as f:
        f.write("".join(f"stat <{i}>\n" for i in inos))
        cmds = f.name
    out = subprocess.run(["debugfs", "-f", cmds, str(image)], capture_output=True, text=True,
                         errors="surrogateescape").stdout
    Path(cmds).unlink()
    info = {}
    for block in out.split("Inode: ")[1:]:
        ino = int(block.split()[0])
        d = {}
        m = re.search(r"Links: (\d+)", block)
        d["links"] = int(m.group(1)) if m else 0
        m = re.search(r" mtime: 0x([0-9a-f]{8}):([0-9a-f]{8})", block)
        if m:
            sec, extra = int(m.group(1), 16), int(m.group(2), 16)
            sec = (sec - (1 << 32) if sec >= 1 << 31 else sec) + ((extra & 3) << 32)
            d["mtime_ns"] = sec * 1_000_000_000 + (extra >> 2)
        m = re.search(r"Mode:\s+0?([0-7]+)", block)
        d["mode"] = int(m.group(1), 8) if m else 0
        m = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", block)
        d["uid"], d["gid"] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        m = re.search(r"Size: (\d+)", block)
        d["size"] = int(m.group(1)) if m else 0
        m = re.search(r'Fast link dest: "(.*)"', block)
        if m:
            d["target"] = m.group(1)
        info[ino] = d
    for path, e in tree.items():
        d = info.get(e["ino"], {})
        e["links"] = d.get("links", 0)
        e["mtime_ns"] = d.get("mtime_ns", 0)
        e["size"] = d.get("size", 0)
        if path == "/":
            e.update(mode=d.get("mode", 0), uid=d.get("uid", 0), gid=d.get("gid", 0))
        if e["type"] == "symlink":
            e["target"] = d["target"] if "target" in d else \
                _debugfs(image, f"cat <{e['ino']}>")[:e["size"]]
    return tree


def rdump(image, out_dir):
    """Every file of the image under out_dir (debugfs rdump)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debugfs", "-R", f"rdump / {out_dir}", str(image)], capture_output=True, check=True)
    return out_dir


def sha256sum(path):
    """The digest coreutils' sha256sum prints for a file (docs/hashes.md)."""
    return subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


def state_tree(state_text):
    """The engine's --state output as a tree."""
    tree = {}
    for line in state_text.splitlines():
        if not line.startswith("{"):
            continue
        o = json.loads(line)
        e = {k: o.get(k, 0) for k in ("ino", "type", "mode", "uid", "gid", "size", "links", "mtime_ns")}
        if e["type"] not in ("file", "dir", "symlink"):
            e["type"] = "other"
        if o["type"] == "symlink":
            e["target"] = o.get("target", "")
        tree[o["path"]] = e
    return tree


def strip(e):
    """What events carry: no link counts, times or directory sizes."""
    e = dict(e)
    e.pop("links", None)
    e.pop("mtime_ns", None)
    if e["type"] == "dir":
        e["size"] = 0
    return e


def load_events(path):
    """The events of a `dsvmi run` stream, without its engine records
    (docs/events.md: a line with an "engine" key is not an event)."""
    lines = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    return [e for e in lines if "engine" not in e]


def apply_events(tree, events):
    """Reference replay: returns (tree, error or None)."""
    t = {p: strip(e) for p, e in tree.items()}

    def attrs(e, ev):
        a = ev.get("attrs")
        if not a:
            return
        e.update(mode=a["mode"], uid=a["uid"], gid=a["gid"])
        e["size"] = 0 if e["type"] == "dir" else a["size"]
        if a["type"] == "symlink":
            e["target"] = a.get("target", "")

    def parent_missing(p):
        d = p.rsplit("/", 1)[0] or "/"
        return d not in t or t[d]["type"] != "dir"

    for ev in events:
        k, p = ev["event"], ev.get("path")
        if k in ("create", "mkdir", "symlink", "link", "rename") and parent_missing(p):
            return t, f"{k} into a missing directory: {p}"
        if k in ("create", "mkdir", "symlink"):
            if p in t:
                return t, f"{k} over existing {p}"
            # A new file at a reused number: the old one's names went first.
            old = [q for q, e in t.items() if e["ino"] == ev["ino"]]
            if old:
                return t, f"{k} of inode {ev['ino']} at {p} while it is still {old[0]}"
            a = ev["attrs"]
            e = {"ino": ev["ino"], "type": {"file": "file", "dir": "dir", "symlink": "symlink"}.get(a["type"], "other")}
            attrs(e, ev)
            t[p] = e
        elif k == "link":
            if p in t:
                return t, f"link over existing {p}"
            src = [e for e in t.values() if e["ino"] == ev["ino"]]
            if not src:
                return t, f"link of unknown inode {ev['ino']} at {p}"
            t[p] = dict(src[0])
            for e in t.values():
                if e["ino"] == ev["ino"]:
                    attrs(e, ev)
        elif k in ("unlink", "delete", "rmdir"):
            if p not in t:
                return t, f"{k} of missing {p}"
            if t[p]["ino"] != ev["ino"]:
                return t, f"{k} of {p}: inode {ev['ino']}, but the tree has {t[p]['ino']} there"
            if k == "rmdir" and any(q.startswith(p + "/") for q in t):
                return t, f"rmdir of non-empty {p}"
            del t[p]
            if k in ("delete", "rmdir") and any(e["ino"] == ev["ino"] for e in t.values()):
                return t, f"{k} of {p}: inode {ev['ino']} still has a name"
        elif k == "rename":
            o = ev["old_path"]
            if o not in t:
                return t, f"rename of missing {o}"
            if p in t:
                return t, f"rename over existing {p} without a delete first"
            if t[o]["ino"] != ev["ino"]:
                return t, f"rename of {o}: inode {ev['ino']}, but the tree has {t[o]['ino']} there"
            if p.startswith(o + "/"):
                return t, f"rename of {o} below itself: {p}"
            moved = {p + q[len(o):]: e for q, e in t.items() if q == o or q.startswith(o + "/")}
            for q in [q for q in t if q == o or q.startswith(o + "/")]:
                del t[q]
            t.update(moved)
            for e in t.values():
                if e["ino"] == ev["ino"]:
                    attrs(e, ev)
        elif k in ("attrib", "truncate", "extend"):
            hit = False
            for e in t.values():
                if e["ino"] == ev["ino"]:
                    attrs(e, ev)
                    hit = True
            if not hit:
                return t, f"{k} of unknown inode {ev['ino']}"
    return t, None


def rebuild_contents(initial, events):
    """{ino: bytearray} from initial {ino: bytes} plus create/modify/size
    events (modify events must carry data)."""
    c = {ino: bytearray(b) for ino, b in initial.items()}
    for ev in events:
        k = ev["event"]
        if k == "create":
            c[ev["ino"]] = bytearray()
        elif k == "modify":
            data = base64.b64decode(ev.get("data", ""))
            assert len(data) == ev["length"], f"modify without its data: {ev}"
            b = c.setdefault(ev["ino"], bytearray())
            end = ev["offset"] + len(data)
            if len(b) < end:
                b.extend(b"\0" * (end - len(b)))
            b[ev["offset"]:end] = data
        elif k in ("truncate", "extend"):
            b = c.setdefault(ev["ino"], bytearray())
            n = ev["size"]
            if len(b) > n:
                del b[n:]
            else:
                b.extend(b"\0" * (n - len(b)))
    return c


def diff_trees(a, b, limit=30):
    lines = []
    for p in sorted(set(a) | set(b)):
        if a.get(p) != b.get(p):
            lines.append(f"{p}: engine={a.get(p)} oracle={b.get(p)}")
    return "\n".join(lines[:limit]) + (f"\n... {len(lines) - limit} more" if len(lines) > limit else "")
