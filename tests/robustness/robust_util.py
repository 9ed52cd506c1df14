"""Shared pieces of the robustness tests: running qkv, a small GGUF reader/writer for mutating
files, special files (FIFO, device node, full file system) and a check list that reports every
failure at the end.

Nothing here imports numpy or gguf-py: the tests run on a bare Python 3.
"""
import ctypes
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from shared_data import shared_required  # noqa: E402

SKIP = 77

# ---- running qkv --------------------------------------------------------------------------------


def run(qkv, *args, timeout=300, stdin=None):
    """(exit code, stdout, stderr) of `qkv ARGS`; one thread for the commands that run a model."""
    args = [str(a) for a in args]
    if args and args[0] in ("generate", "embed", "explain") and "--threads" not in args:
        args += ["--threads", "1"]
    p = subprocess.run([qkv, *args], capture_output=True, timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class Checks:
    """Collects failures; report() prints them and gives the exit code."""

    def __init__(self):
        self.failures = []
        self.n = 0

    def check(self, cond, what):
        self.n += 1
        if not cond:
            self.failures.append(what)
        return cond

    def refused(self, result, *parts, what=""):
        """A normal failure (exit 1..127, no signal) whose message names every part."""
        rc, out, err = result
        ok = 0 < rc < 128 and all(p in err for p in parts) and "terminate called" not in err
        return self.check(ok, f"{what}: expected a refusal naming {parts}, got rc {rc}: {err[-400:]}")

    def shared(self, path, what):
        """True when ../shared has `path`; else a note (a skip of these cases), or a failure
        under QKV_REQUIRE_SHARED, as CI runs."""
        if pathlib.Path(path).exists():
            return True
        if shared_required():
            self.check(False, f"{what}: {path} is absent and QKV_REQUIRE_SHARED is set")
        else:
            print(f"note: {path} is absent (../shared not beside the project); {what} skipped")
        return False

    def report(self, name):
        for f in self.failures:
            print("FAIL:", f)
        print(f"{name}: {self.n - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


# ---- GGUF ---------------------------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
           U64: "Q", I64: "q", F64: "d"}
# bytes per block, values per block of the tensor types the tests write
_TYPE_SIZE = {0: (4, 1), 1: (2, 1), 30: (2, 1), 26: (4, 1), 8: (34, 32)}


class Gguf:
    """A GGUF file as Python data: kv (ordered dict key -> (type, value)) and tensors (list of
    dicts name/dims/type/data). write() lays it out again with the same alignment."""

    def __init__(self, path):
        b = pathlib.Path(path).read_bytes()
        assert b[:4] == b"GGUF", path
        self.version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
        pos = 24
        self.kv = {}

        def read_str(pos):
            (n,) = struct.unpack_from("<Q", b, pos)
            return b[pos + 8:pos + 8 + n].decode("utf-8"), pos + 8 + n

        def read_val(t, pos):
            if t == STRING:
                return read_str(pos)
            if t == ARRAY:
                et, n = struct.unpack_from("<IQ", b, pos)
                pos += 12
                items = []
                for _ in range(n):
                    v, pos = read_val(et, pos)
                    items.append(v)
                return (et, items), pos
            f = "<" + _SCALAR[t]
            return struct.unpack_from(f, b, pos)[0], pos + struct.calcsize(f)

        for _ in range(n_kv):
            key, pos = read_str(pos)
            (t,) = struct.unpack_from("<I", b, pos)
            v, pos = read_val(t, pos + 4)
            self.kv[key] = (t, v)
        infos = []
        for _ in range(n_tensors):
            name, pos = read_str(pos)
            (nd,) = struct.unpack_from("<I", b, pos)
            dims = list(struct.unpack_from(f"<{nd}Q", b, pos + 4))
            pos += 4 + 8 * nd
            t, off = struct.unpack_from("<IQ", b, pos)
            pos += 12
            infos.append((name, dims, t, off))
        self.alignment = self.kv.get("general.alignment", (U32, 32))[1]
        data0 = (pos + self.alignment - 1) // self.alignment * self.alignment
        self.tensors = []
        for name, dims, t, off in infos:
            n = 1
            for d in dims:
                n *= d
            bs, per = _TYPE_SIZE[t]
            size = n // per * bs
            self.tensors.append({"name": name, "dims": dims, "type": t,
                                 "data": bytearray(b[data0 + off:data0 + off + size])})

    def tensor(self, name):
        return next(t for t in self.tensors if t["name"] == name)

    def set(self, key, t, value):
        self.kv[key] = (t, value)

    def write(self, path):
        out = bytearray(b"GGUF")
        out += struct.pack("<IQQ", self.version, len(self.tensors), len(self.kv))

        def put_str(s):
            e = s.encode("utf-8")
            out.extend(struct.pack("<Q", len(e)) + e)

        def put_val(t, v):
            if t == STRING:
                put_str(v)
            elif t == ARRAY:
                et, items = v
                out.extend(struct.pack("<IQ", et, len(items)))
                for x in items:
                    put_val(et, x)
            else:
                out.extend(struct.pack("<" + _SCALAR[t], v))

        for k, (t, v) in self.kv.items():
            put_str(k)
            out.extend(struct.pack("<I", t))
            put_val(t, v)
        a = self.alignment
        off = 0
        for t in self.tensors:
            put_str(t["name"])
            out.extend(struct.pack("<I", len(t["dims"])))
            out.extend(struct.pack(f"<{len(t['dims'])}Q", *t["dims"]))
            out.extend(struct.pack("<IQ", t["type"], off))
            off += (len(t["data"]) + a - 1) // a * a
        if self.tensors:
            out.extend(b"\0" * ((a - len(out) % a) % a))
            for t in self.tensors:
                out.extend(t["data"])
                out.extend(b"\0" * ((a - len(t["data"]) % a) % a))
        pathlib.Path(path).write_bytes(bytes(out))


# ---- special files ------------------------------------------------------------------------------


def make_device_node(path):
    """A character device like /dev/null (1, 3) at path; False where mknod is not permitted."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return True
    except OSError:
        return False


def is_char_device(path):
    try:
        return stat.S_ISCHR(os.lstat(path).st_mode)
    except OSError:
        return False


_libc = ctypes.CDLL(None, use_errno=True)


class SmallFs:
    """A small file system to fill: a tmpfs where mounting is permitted, else a loop-mounted ext2
    image (mkfs.ext2 + mount -o loop). ok is False, with the reason in why, where neither works;
    callers then fall back to /dev/full."""

    def __init__(self, kib=256):
        self.dir = tempfile.mkdtemp(prefix="qkv-fullfs-")
        self.ok, self.why, self.image = False, "", None
        r = _libc.mount(b"tmpfs", self.dir.encode(), b"tmpfs", 0, f"size={kib}k".encode())
        if r == 0:
            self.ok = True
            return
        self.why = f"tmpfs: {os.strerror(ctypes.get_errno())}"
        mkfs = shutil.which("mkfs.ext2") or shutil.which("mke2fs")
        if mkfs and shutil.which("mount"):
            fd, self.image = tempfile.mkstemp(suffix=".img")
            os.ftruncate(fd, max(kib, 1024) * 1024)
            os.close(fd)
            p = subprocess.run([mkfs, "-q", "-F", self.image], capture_output=True)
            q = p.returncode == 0 and subprocess.run(
                ["mount", "-o", "loop", self.image, self.dir], capture_output=True)
            if q and q.returncode == 0:
                self.ok = True
                return
            self.why += "; loop image: " + (q.stderr.decode() if q else p.stderr.decode()).strip()
        else:
            self.why += "; no mkfs.ext2 for a loop image"

    def path(self, name):
        return os.path.join(self.dir, name)

    def fill(self):
        try:
            with open(self.path("filler"), "wb", buffering=0) as f:
                while True:
                    f.write(b"x" * 4096)
        except OSError:
            pass

    def close(self):
        if self.ok:
            subprocess.run(["umount", "-l", self.dir], capture_output=True)
        if self.image:
            os.unlink(self.image)
        shutil.rmtree(self.dir, ignore_errors=True)
