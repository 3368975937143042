"""A client of the HL7 FHIR validator process that tools/fetch-validator.sh builds.

One Java process per test session (tools/validator: HAPI's FhirInstanceValidator, the
HL7 InstanceValidator inside, over the R4 core definitions and the local IPS packages,
no terminology server). Each request is a header line ``PROFILE<TAB>@N`` and N bytes
of JSON on its stdin; each answer one JSON line on its stdout with the issues found.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".validator"
JAR = OUT / "build" / "phrx-fhir-validator.jar"
MAIN = "org.phrx.validator.ValidatorServer"
ERRORS = ("error", "fatal")
START_TIMEOUT_S = 300.0  # loading the packages takes ~20 s on this 2-core machine
CALL_TIMEOUT_S = 120.0


def unavailable() -> str | None:
    """Why the validator cannot run here, or None when it can."""
    if shutil.which("java") is None:
        return "no java on PATH (tools/fetch-validator.sh installs it as root)"
    for needed in (OUT / "stamp", JAR, OUT / "packages.txt"):
        if not needed.exists():
            return f"{needed.relative_to(ROOT)} missing: run `make validator`"
    return None


@dataclass
class Validated:
    """What the validator said about one served body."""

    what: str
    profile: str | None
    issues: list[dict]
    ms: float

    @property
    def errors(self) -> list[dict]:
        return [i for i in self.issues if i["severity"] in ERRORS]

    @property
    def warnings(self) -> list[dict]:
        return [i for i in self.issues if i["severity"] == "warning"]


@dataclass
class ValidatorProcess:
    """The long-lived validator; :meth:`validate` may be called any number of times."""

    proc: subprocess.Popen
    ready: dict
    start_s: float
    results: list[Validated] = field(default_factory=list)
    _buffer: bytes = b""
    _began: float = 0.0
    _log_path: Path | None = None

    @classmethod
    def start(cls, log_path: Path) -> ValidatorProcess:
        return cls.launch(log_path).wait_ready()

    @classmethod
    def launch(cls, log_path: Path) -> ValidatorProcess:
        """Start the JVM and return at once: it loads its packages (10-30 s) while
        the session runs other tests; :meth:`wait_ready` waits for it."""
        packages = [ROOT / line for line in (OUT / "packages.txt").read_text().split()]
        classpath = f"{JAR}{os.pathsep}{OUT / 'lib' / '*'}"
        began = time.monotonic()
        log = log_path.open("wb")
        proc = subprocess.Popen(
            ["java", "-Xmx1g", "-Xss4m", "-cp", classpath, MAIN, *map(str, packages)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
        )
        log.close()
        launched = cls(proc, {}, 0.0)
        launched._began, launched._log_path = began, log_path
        return launched

    def wait_ready(self) -> ValidatorProcess:
        if not self.ready:
            self.ready = self._answer(START_TIMEOUT_S, self._log_path)
            if not self.ready.get("ready"):
                self.proc.kill()
                raise RuntimeError(f"validator did not start: {self.ready}")
            self.start_s = time.monotonic() - self._began
        return self

    def validate(self, resource, profile: str | None = None, what: str = "") -> Validated:
        """Validate ``resource`` (a served body: bytes / str, or a dict) against its
        type, and ``profile`` (a canonical URL) when given."""
        if isinstance(resource, dict):
            body = json.dumps(resource, ensure_ascii=False).encode()
        elif isinstance(resource, str):
            body = resource.encode()
        else:
            body = bytes(resource)
        header = f"{profile or ''}\t@{len(body)}\n".encode()
        self.proc.stdin.write(header + body + b"\n")
        self.proc.stdin.flush()
        answer = self._answer(CALL_TIMEOUT_S)
        found = Validated(what, profile, answer["issues"], answer["ms"])
        self.results.append(found)
        return found

    def _answer(self, timeout_s: float, log_path: Path | None = None) -> dict:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0))
            chunk = os.read(fd, 1 << 16) if readable else b""
            if not chunk:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
                state = "exited" if self.proc.poll() is not None else "timed out"
                raise RuntimeError(f"validator {state} without an answer\n{tail}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
