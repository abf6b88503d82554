"""A real `mlflow server` on a loopback port for tests: SQLite backend store, its own artifact root."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with the SQLite store and artifact folder of ``root``: a server
    started again on the same ``root`` holds the same runs."""

    def __init__(self, root: Path):
        self.root, self.process, self.url = root, None, None

    def start(self, timeout: float = 120) -> str:
        port = free_port()
        self.log = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            # without MLflow's job runner and its seven task-queue consumers (GenAI jobs, which no
            # test starts): about 16 s of CPU less per server start, as `make ui` runs it
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except OSError:
                pass
            assert time.monotonic() < deadline, f"MLflow server not ready in {timeout} s"
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        self.log.close()


@contextmanager
def mlflow_server(root: Path, timeout: float = 120):
    """A started :class:`MlflowServer`'s URL; the server is stopped on exit."""
    server = MlflowServer(root)
    try:
        yield server.start(timeout)
    finally:
        server.stop()
