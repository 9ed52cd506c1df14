"""Access to ../shared from the Python tests: the twin of tests/common/shared_data.h.

A test whose reference data is absent skips (exit 77, CTest's SKIP_RETURN_CODE), or fails (exit 1)
when QKV_REQUIRE_SHARED is set to anything but "" or "0", as CI does.
"""
import os
import sys

SKIP = 77


def shared_required():
    return os.environ.get("QKV_REQUIRE_SHARED", "") not in ("", "0")


def missing(path, what="reference data"):
    """Exit code for a test whose ../shared data at `path` is absent, after saying so."""
    if shared_required():
        print(f"FAILED: {what} {path} is absent and QKV_REQUIRE_SHARED is set")
        return 1
    print(f"skipped: {what} {path} is absent (../shared is not checked out beside the project)")
    return SKIP


def require(path, what="reference data"):
    """Returns when `path` exists; otherwise exits with missing()'s code."""
    if not os.path.exists(path):
        sys.exit(missing(path, what))
