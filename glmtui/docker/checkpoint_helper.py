"""Checkpoints of a workspace, run inside glmtui's checkpoint helper container (python3 and git).

Not imported by glmtui: its source is run there as `python3 -c SOURCE COMMAND ARGS...`, with the
environment's workspace volume at /workspace and its checkpoint volume at /checkpoints.

The workspace is recorded with git in a git directory of its own (/checkpoints/git), never the
workspace's: every `.git` in the workspace is left out, and folders that are repositories of
their own are recorded file by file. A checkpoint is a commit on refs/glmtui/checkpoints whose
tree holds `files` (the workspace's tree) and `modes` (every path's type, mode, owner and group,
which git does not keep: permissions, ownership, empty folders). The ref moves only once every
object is written, so a snapshot that fails is never a checkpoint.

Prints one JSON document on success; on failure one line on stderr and exit status 1 (3: there
is no such checkpoint).
"""

import json
import os
import stat
import subprocess
import sys
import time

WORKSPACE = "/workspace"
GIT_DIR = "/checkpoints/git"
REF = "refs/glmtui/checkpoints"
STALE_LOCK_SECONDS = 600  # a lock this old was left by a helper that was stopped mid-way
GIT_ENV = {
    **os.environ, "GIT_DIR": GIT_DIR, "GIT_WORK_TREE": WORKSPACE, "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/checkpoints",
    "GIT_AUTHOR_NAME": "glmtui", "GIT_AUTHOR_EMAIL": "glmtui@localhost",
    "GIT_COMMITTER_NAME": "glmtui", "GIT_COMMITTER_EMAIL": "glmtui@localhost",
}


class Failed(Exception):
    status = 1


class Missing(Failed):
    status = 3


def git(*args, data=None, check=True):
    done = subprocess.run(["git", *args], input=data, cwd=WORKSPACE, env=GIT_ENV, capture_output=True)
    if check and done.returncode != 0:
        if b"index.lock': File exists" in done.stderr:
            raise Failed("another checkpoint or rollback of this environment is under way: try again in a moment")
        detail = "; ".join(line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip())
        raise Failed(f"git {args[0]} failed: {detail or f'exit status {done.returncode}'}")
    return done.stdout


def ensure_repository():
    lock = os.path.join(GIT_DIR, "index.lock")
    try:
        if time.time() - os.stat(lock).st_mtime > STALE_LOCK_SECONDS:
            os.unlink(lock)
    except FileNotFoundError:
        pass
    if not os.path.isdir(GIT_DIR):
        git("init", "-q")
        for key, value in (("gc.auto", "0"), ("core.autocrlf", "false"), ("core.quotepath", "false"),
                           ("core.fileMode", "true")):
            git("config", key, value)


def walk():
    """Every path of the workspace but `.git`s: (files and links, manifest lines)."""
    files, manifest = [], []

    def visit(folder, prefix):
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name.encode("utf-8", "surrogateescape")
                if name == b".git":
                    continue
                relative = prefix + name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    kind = b"d"
                elif stat.S_ISREG(info.st_mode):
                    kind = b"f"
                elif stat.S_ISLNK(info.st_mode):
                    kind = b"l"
                else:
                    continue  # fifos, sockets, devices: git cannot keep them
                manifest.append(b"%s %o %d %d %s" % (kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                                    relative))
                if kind == b"d":
                    visit(entry.path, relative + b"/")
                else:
                    files.append(relative)

    visit(WORKSPACE, b"")
    manifest.sort(key=lambda line: line.split(b" ", 4)[4])
    return files, manifest


def head():
    return git("rev-parse", "-q", "--verify", REF, check=False).decode().strip() or None


def stage():
    """The index made to hold the workspace as it is now; returns the manifest."""
    files, manifest = walk()
    known = set(git("ls-files", "-z").split(b"\0")) - {b""}
    gone = known - set(files)
    git("update-index", "--add", "--remove", "-z", "--stdin", data=b"\0".join([*files, *gone]) + b"\0")
    return manifest


def manifest_of(commit):
    return [line for line in git("cat-file", "blob", f"{commit}:modes").splitlines() if line]


def changed_paths(old_commit, new_files_tree, new_manifest):
    changed = set(git("diff-tree", "-r", "-z", "--name-only", f"{old_commit}:files", new_files_tree).split(b"\0"))
    changed.discard(b"")
    old = set(manifest_of(old_commit))
    new = set(new_manifest)
    changed.update(line.split(b" ", 4)[4] for line in old ^ new if not line.startswith(b"d "))
    return changed


def take(message, reuse):
    ensure_repository()
    manifest = stage()
    files_tree = git("write-tree").decode().strip()
    modes = git("hash-object", "-w", "--stdin", data=b"\n".join(manifest) + b"\n").decode().strip()
    tree = git("mktree", data=f"040000 tree {files_tree}\tfiles\n100644 blob {modes}\tmodes\n".encode()).decode().strip()
    parent = head()
    if parent:
        if reuse and git("rev-parse", f"{parent}^{{tree}}").decode().strip() == tree:
            return describe(parent, unchanged=True)
        count = len(changed_paths(parent, files_tree, manifest))
    else:
        count = sum(1 for line in manifest if not line.startswith(b"d "))
    text = f"{message}\n\nFiles-Changed: {count}\n"
    commit = git("commit-tree", tree, *(["-p", parent] if parent else []), data=text.encode()).decode().strip()
    git("update-ref", REF, commit, parent or "0" * 40)
    return describe(commit)


RECORD = "%H%x1f%ct%x1f%B%x1e"  # fields apart by 0x1f, records ended by 0x1e


def describe(commit, unchanged=False):
    found = entry(git("log", "-1", f"--format={RECORD}", commit).decode(errors="replace"))
    if unchanged:
        found["unchanged"] = True
    return found


def entry(raw):
    commit, when, body = raw.strip("\n\x1e").split("\x1f", 2)
    lines = body.strip().splitlines()
    count = 0
    if lines and lines[-1].startswith("Files-Changed: "):
        count = int(lines.pop().split(": ", 1)[1])
    return {"id": commit[:12], "commit": commit, "time": int(when), "message": "\n".join(lines).strip(),
            "files_changed": count}


def listing():
    if not os.path.isdir(GIT_DIR) or not head():
        return []
    raw = git("log", f"--format={RECORD}", REF).decode(errors="replace")
    return [entry(record) for record in raw.split("\x1e") if record.strip()]


def resolve(checkpoint):
    if not os.path.isdir(GIT_DIR) or not head():
        raise Missing("there are no checkpoints yet of environment")
    commit = git("rev-parse", "-q", "--verify", f"{checkpoint}^{{commit}}", check=False).decode().strip()
    if not commit or git_status("merge-base", "--is-ancestor", commit, REF) != 0:
        raise Missing(f"no checkpoint {checkpoint!r} in environment")
    return commit


def git_status(*args):
    return subprocess.run(["git", *args], cwd=WORKSPACE, env=GIT_ENV, capture_output=True).returncode


def diff(checkpoint):
    commit = resolve(checkpoint or REF)
    ensure_repository()
    stage()
    return {"id": commit[:12], "patch": git("diff", "--cached", "--no-color", "--no-renames", f"{commit}:files")
            .decode(errors="replace")}


def rollback(checkpoint):
    commit = resolve(checkpoint)
    target = describe(commit)
    rescue = take(f"rescue: before rollback to {commit[:12]}", reuse=True)
    git("read-tree", "--reset", "-u", f"{commit}:files")
    restore_modes(manifest_of(commit))
    return {"rescue": rescue, "checkpoint": target}


def restore_modes(manifest):
    """Folders, permissions and ownership as the manifest has them; folders made since, if empty, go."""
    wanted = set()
    for line in manifest:
        kind, mode, uid, gid, relative = line.split(b" ", 4)
        wanted.add(relative)
        path = os.path.join(WORKSPACE.encode(), relative)
        if kind == b"d":
            os.makedirs(path, exist_ok=True)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if (info.st_uid, info.st_gid) != (int(uid), int(gid)):
            os.lchown(path, int(uid), int(gid))
        if kind != b"l" and stat.S_IMODE(info.st_mode) != int(mode, 8):
            os.chmod(path, int(mode, 8))
    for folder, subfolders, names in os.walk(WORKSPACE.encode(), topdown=False):
        if b".git" in subfolders:
            continue
        relative = os.path.relpath(folder, WORKSPACE.encode())
        if folder != WORKSPACE.encode() and relative not in wanted and not names and not os.listdir(folder):
            os.rmdir(folder)


def main(command, *args):
    if command == "take":
        return take(args[0], args[1] == "reuse")
    if command == "list":
        return listing()
    if command == "diff":
        return diff(args[0] if args else None)
    if command == "rollback":
        return rollback(args[0])
    raise Failed(f"unknown command {command!r}")


try:
    print(json.dumps(main(*sys.argv[1:])))
except Failed as failure:
    print(failure, file=sys.stderr)
    sys.exit(failure.status)
except OSError as failure:
    print(f"{failure.strerror}: {failure.filename!r}" if failure.filename else str(failure), file=sys.stderr)
    sys.exit(1)
