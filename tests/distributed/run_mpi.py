#!/usr/bin/env python3
"""Runs a distributed test under mpirun on this machine.

    run_mpi.py MPIEXEC NP PROGRAM [ARGS...]        the program's tests on NP ranks
    run_mpi.py MPIEXEC NP PROGRAM --fault MODE     rank 1 dies (kill) or hangs (stop) mid-run: the
                                                   job must fail within 10 s, naming rank 1

Exit 77 (skipped, with the reason) when MPIEXEC is not there. mpirun refuses to start as root
unless told: --allow-run-as-root is added when this runs as root (containers, CI).
"""
import os
import shutil
import subprocess
import sys
import time


def main():
    mpiexec, np, prog, *args = sys.argv[1:]
    if not mpiexec or not (os.path.exists(mpiexec) or shutil.which(mpiexec)):
        print(f"skipped: mpirun ({mpiexec or 'not found at configure time'}) is not installed "
              "(Debian: openmpi-bin, libopenmpi-dev)")
        return 77
    cmd = [mpiexec, "--oversubscribe", "-np", np]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    # Shared memory between the ranks of one machine; no network probing.
    cmd += ["--mca", "btl", "self,vader"]
    env = dict(os.environ)
    # Each rank runs its kernels on one thread: N ranks on a 2-core machine oversubscribe it.
    env.setdefault("OMP_NUM_THREADS", "1")
    # Under the asan preset, no leak check: Open MPI leaves allocations of its components alive
    # past MPI_Finalize, from libraries it has unloaded by then, so LeakSanitizer can attribute
    # them to no module and no suppression matches. AddressSanitizer and UBSan still run.
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
    fault = len(args) == 2 and args[0] == "--fault"
    if fault:
        env["QKV_MPI_TIMEOUT_S"] = "3"
    cmd += [prog, *args]
    print(" ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60 if fault else 600)
    except subprocess.TimeoutExpired as e:
        print(e.output or "")
        print(f"FAIL: mpirun did not finish within {e.timeout} s (a hang)")
        return 1
    elapsed = time.monotonic() - t0
    print(r.stdout)
    if not fault:
        return r.returncode
    mode = args[1]
    # The time from the rank's loss to the others' exit: the job's start-up and the first calls
    # take a few seconds of their own on a loaded machine, so the bound is on the whole run.
    ok = True
    if r.returncode == 0:
        print("FAIL: the job exited 0 after rank 1 was lost")
        ok = False
    lost_at = r.stdout.find("rank 1:")
    after = r.stdout[lost_at:] if lost_at >= 0 else r.stdout
    if "rank 1" not in after.replace("rank 1:", "", 1):
        print("FAIL: no message names the lost rank 1")
        ok = False
    if "finished without noticing" in r.stdout:
        print("FAIL: a rank finished without noticing the lost rank")
        ok = False
    print(f"{mode}: job ended in {elapsed:.1f} s, exit {r.returncode}")
    if elapsed > 15:
        print("FAIL: more than 15 s from start to the end of the job (10 s after the loss)")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
