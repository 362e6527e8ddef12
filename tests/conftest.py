import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyagent_ft.synth.generate import SynthConfig, synthesize


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset shared by the tests."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, SynthConfig(n=2000, seed=1))
    return out


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(model: str, *args: str, env: dict | None = None):
    """A real `tinyagent-ft serve` process on a free loopback port; yields its URL once /readyz is 200."""
    import httpx2 as httpx
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tinyagent_ft", "serve", "--model", model, "--port", str(port),
                             "--device", "cpu", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read())
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not become ready in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
