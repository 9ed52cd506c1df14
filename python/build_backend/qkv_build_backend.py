"""A PEP 517 build backend for the qkv Python package, with no dependencies beyond the standard
library (Debian 12 packages no scikit-build-core, and pip's isolated build environment could not
download one offline).

build_wheel configures the CMake project with QKV_PYTHON=ON for the interpreter pip runs (tests,
benchmarks and CUDA off), builds the _qkv module, installs the `python` component into a
staging folder and zips it with the .dist-info files into a wheel. The CMake build folder is
build/pip (QKV_PIP_BUILD_DIR overrides it) and is kept, so a second install rebuilds only what
changed; CMAKE_CXX_COMPILER_LAUNCHER=ccache in the environment is honoured. QKV_PIP_CMAKE_ARGS
adds CMake arguments (space-separated). QKV_PIP_FROM_BUILD=DIR packages the module of an existing
CMake build folder instead (configured with QKV_PYTHON for the same interpreter): the CTest
python_pip_venv uses it to check the wheel and the virtual-environment route without a second
build of the whole project.
"""
import base64
import hashlib
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

NAME = "qkv"
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _version():
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("pyproject.toml has no version")


def _tag():
    impl = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    abi = impl + sys.abiflags
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{abi}-{plat}"


def _metadata(version):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n"
            "Summary: Exact, fast self-attention for NumPy and PyTorch; GGUF / Hugging Face / "
            "llama2.c models, generation and exact attention maps\n"
            "Requires-Python: >=3.9\nRequires-Dist: numpy\n"
            "Description-Content-Type: text/markdown\n\n" + readme)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _run(cmd):
    print("qkv build:", " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def _build(staging):
    prebuilt = os.environ.get("QKV_PIP_FROM_BUILD")
    if prebuilt:
        _run(["cmake", "--build", prebuilt, "--target", "_qkv"])
        _run(["cmake", "--install", prebuilt, "--component", "python", "--prefix", staging])
        return
    build = pathlib.Path(os.environ.get("QKV_PIP_BUILD_DIR", ROOT / "build" / "pip"))
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", ROOT, "-B", build, *gen, "-DCMAKE_BUILD_TYPE=Release",
          "-DQKV_PYTHON=ON", f"-DQKV_PYTHON_EXECUTABLE={sys.executable}",
          "-DQKV_BUILD_TESTS=OFF", "-DQKV_BUILD_BENCH=OFF", "-DQKV_CUDA=OFF",
          *shlex.split(os.environ.get("QKV_PIP_CMAKE_ARGS", ""))])
    _run(["cmake", "--build", build, "--target", "_qkv", "-j", jobs])
    _run(["cmake", "--install", build, "--component", "python", "--prefix", staging])


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _dist_info_files(version, tag):
    return {
        "METADATA": _metadata(version).encode(),
        "WHEEL": (f"Wheel-Version: 1.0\nGenerator: qkv_build_backend\nRoot-Is-Purelib: false\n"
                  f"Tag: {tag}\n").encode(),
        "top_level.txt": f"{NAME}\n".encode(),
    }


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    """The .dist-info folder without building (else pip builds the wheel twice)."""
    version = _version()
    dist_info = pathlib.Path(metadata_directory) / f"{NAME}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    for name, data in _dist_info_files(version, _tag()).items():
        (dist_info / name).write_bytes(data)
    return dist_info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    tag = _tag()
    dist_info = f"{NAME}-{version}.dist-info"
    wheel_name = f"{NAME}-{version}-{tag}.whl"
    with tempfile.TemporaryDirectory() as tmp:
        staging = pathlib.Path(tmp) / "staging"
        _build(staging)
        files = {}
        for p in sorted((staging / NAME).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[p.relative_to(staging).as_posix()] = p.read_bytes()
        if not any(name.startswith(f"{NAME}/_qkv") for name in files):
            raise RuntimeError("the CMake build installed no qkv/_qkv module")
        for name, data in _dist_info_files(version, tag).items():
            files[f"{dist_info}/{name}"] = data
        record = [_record_line(name, data) for name, data in files.items()]
        record.append(f"{dist_info}/RECORD,,")
        files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
        out = pathlib.Path(wheel_directory) / wheel_name
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    """The tracked files of the repository (git ls-files) as qkv-VERSION.tar.gz."""
    import tarfile
    version = _version()
    base = f"{NAME}-{version}"
    names = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    out = pathlib.Path(sdist_directory) / f"{base}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name in filter(None, names):
            if (ROOT / name).is_file():
                tar.add(ROOT / name, arcname=f"{base}/{name}", recursive=False)
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = _metadata(version).encode()
        info.size = len(data)
        import io
        tar.addfile(info, io.BytesIO(data))
    return out.name
