"""An embedded Prometheus server on a free port, scraping the simulated serving world.

The real thing (Debian's ``prometheus`` package), so that canary analysis is tested against
the query API it will meet in production; tests stop and kill it to see what the bot does
when its metrics are gone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
import yaml

from sandbox.ports import free_port


class PrometheusError(RuntimeError):
    """prometheus is missing or did not come up."""


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape target: ``job`` names it in every series, as the analysis queries expect."""

    job: str
    address: str  # host:port
    metrics_path: str = "/metrics"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebUser:
    """A basic-auth user of the server's web config (``--web.config.file``): Prometheus
    keeps only the bcrypt hash; the readiness probe sends the password."""

    name: str
    password: str
    bcrypt_hash: str


class PrometheusServer:
    def __init__(self, jobs: list[ScrapeJob], *, port: int = 0, scrape_interval: str = "1s",
                 binary: str = "prometheus", user: WebUser | None = None) -> None:
        found = shutil.which(binary)
        if found is None:
            raise PrometheusError(f"{binary} not found on PATH: install Prometheus "
                                  "(e.g. the prometheus package)")
        self.binary = found
        self.jobs = jobs
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.user = user
        self.data_dir = Path(tempfile.mkdtemp(prefix="rollout-prometheus-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = urllib3.PoolManager(maxsize=2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config(self) -> dict[str, object]:
        return {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{
                "job_name": job.job, "metrics_path": job.metrics_path,
                "scrape_interval": self.scrape_interval,
                "static_configs": [{"targets": [job.address], "labels": job.labels}],
            } for job in self.jobs],
        }

    def start(self, *, timeout: float = 30.0) -> PrometheusServer:
        if self.running:
            return self
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        args = [self.binary, f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                "--storage.tsdb.retention.time=1d", *self._web_config()]
        # a file, not a pipe: nobody drains a pipe during a long demo, and a full one blocks
        with self.log.open("ab") as log:
            # its own process group, as the embedded Redis (a terminal's Ctrl-C is the
            # sandbox's to handle: it stops this server last)
            self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log,
                                          process_group=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self.log.read_text(errors="replace").strip()[-500:]
                self._proc = None
                raise PrometheusError(f"prometheus exited at start: {err}")
            if self._ready():
                return self
            time.sleep(0.1)
        self.kill()
        raise PrometheusError(f"prometheus was not ready on port {self.port}")

    def _web_config(self) -> list[str]:
        """The flag that asks for basic auth on every endpoint, with its file; none without
        a user."""
        if self.user is None:
            return []
        web = self.data_dir / "web.yml"
        web.write_text(yaml.safe_dump(
            {"basic_auth_users": {self.user.name: self.user.bcrypt_hash}}))
        return [f"--web.config.file={web}"]

    def _ready(self) -> bool:
        headers = {} if self.user is None else urllib3.make_headers(
            basic_auth=f"{self.user.name}:{self.user.password}")
        try:
            response = self._http.request("GET", f"{self.url}/-/ready", retries=False,
                                          headers=headers,
                                          timeout=urllib3.Timeout(total=1.0))
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        if self._proc is not None:
            self._proc.terminate()
            self._wait()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._wait()

    def close(self) -> None:
        self.stop()
        self._http.clear()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _wait(self) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()
