"""A local stand-in for the Hugging Face hub (tests only): the few HTTP endpoints huggingface_hub's
snapshot_download and datasets' load_dataset call, serving repositories held in memory, on 127.0.0.1.

Served (HF_ENDPOINT=http://127.0.0.1:PORT):
  GET  /api/{models|datasets}/{repo}/revision/{rev}        repo info: sha (the commit), siblings
  GET  /api/{models|datasets}/{repo}/tree/{rev}[/{path}]   file and folder listing (?recursive=true)
  HEAD|GET /{repo}/resolve/{rev}/{file}, /datasets/{repo}/resolve/{rev}/{file}   file metadata / bytes
A revision is a branch or tag name the repo lists, or its commit id. Anything else is answered 404 with
the hub's X-Error-Code header (RepoNotFound, RevisionNotFound, EntryNotFound). Every request is logged
in `Hub.log` as (method, path without the query); huggingface_hub 2.4 also asks GET /api/agent-harnesses
(telemetry, best effort: answered 404). Simplifications: one commit per repository, no LFS or
Xet headers (every file is a plain git blob to the client), no auth, no pagination.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Repo:
    kind: str  # model | dataset
    repo_id: str
    files: dict[str, bytes]
    refs: tuple[str, ...] = ("main",)
    commit: str = field(default="")

    def __post_init__(self):
        self.commit = self.commit or hashlib.sha1(f"{self.kind}:{self.repo_id}".encode()).hexdigest()

    def knows(self, rev: str) -> bool:
        return rev in self.refs or rev == self.commit

    def entry(self, path: str) -> dict:
        if path in self.files:
            data = self.files[path]
            return {"type": "file", "path": path, "size": len(data), "oid": _blob_sha(data)}
        return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(path.encode()).hexdigest()}

    def dirs(self) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)}


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def repo_from_dir(kind: str, repo_id: str, folder: Path, refs=("main",)) -> Repo:
    files = {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}
    return Repo(kind, repo_id, files, tuple(refs))


class Hub:
    def __init__(self, repos: list[Repo]):
        self.repos = {(r.kind, r.repo_id): r for r in repos}
        self.log: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, "HEAD")

            def do_GET(self):
                hub._handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---------------------------------------------------------------- routing

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path)
        self.log.append((method, path))
        parts = path.strip("/").split("/")
        try:
            if parts[0] == "api" and parts[1] in ("models", "datasets"):
                self._api(h, "model" if parts[1] == "models" else "dataset", parts[2:], url.query)
            elif "resolve" in parts:
                kind = "dataset" if parts[0] == "datasets" else "model"
                parts = parts[1:] if kind == "dataset" else parts
                i = parts.index("resolve")
                self._resolve(h, method, kind, "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2:]))
            else:
                self._error(h, 404, "RepoNotFound", f"no route {path}")
        except (IndexError, ValueError):
            self._error(h, 404, "RepoNotFound", f"bad path {path}")

    def _find(self, h, kind: str, rest: list[str], verb: str):
        """(repo, revision, path after the revision) from [org, name, verb, rev, *path]."""
        i = rest.index(verb)
        repo = self.repos.get((kind, "/".join(rest[:i])))
        if repo is None:
            self._error(h, 404, "RepoNotFound", f"Repository {'/'.join(rest[:i])} not found")
            return None
        rev = rest[i + 1] if len(rest) > i + 1 else "main"
        if not repo.knows(rev):
            self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo, rev, "/".join(rest[i + 2:])

    def _api(self, h, kind, rest, query) -> None:
        verb = next((v for v in ("revision", "tree") if v in rest), None)
        if verb is None:
            return self._error(h, 404, "RepoNotFound", "not served")
        found = self._find(h, kind, rest, verb)
        if found is None:
            return
        repo, _, sub = found
        if verb == "revision":
            info = {"id": repo.repo_id, "_id": repo.commit[:24], "sha": repo.commit, "private": False,
                    "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                    "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
            if kind == "dataset":
                info["cardData"] = {}
            return self._json(h, info)
        # tree
        recursive = parse_qs(query).get("recursive", ["false"])[0].lower() == "true"
        prefix = sub.strip("/")
        if prefix and prefix not in repo.dirs():
            return self._error(h, 404, "EntryNotFound", f"{prefix} does not exist")
        names = sorted(set(repo.files) | repo.dirs())
        under = [n for n in names if (not prefix or n.startswith(prefix + "/"))]
        if not recursive:
            depth = prefix.count("/") + 1 if prefix else 0
            under = [n for n in under if n.count("/") == depth]
        return self._json(h, [repo.entry(n) for n in under])

    def _resolve(self, h, method, kind, repo_id, rev, path) -> None:
        found = self._find(h, kind, [*repo_id.split("/"), "resolve", rev], "resolve")
        if found is None:
            return
        repo = found[0]
        if path not in repo.files:
            return self._error(h, 404, "EntryNotFound", f"{path} does not exist on {rev}")
        data = repo.files[path]
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("ETag", f'"{_blob_sha(data)}"')
        h.send_header("X-Repo-Commit", repo.commit)
        h.end_headers()
        if method == "GET":
            h.wfile.write(data)

    @staticmethod
    def _json(h, obj) -> None:
        data = json.dumps(obj).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _error(h, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
