"""Compile the PHRX contracts with the pinned solc (npm `solc`, run by node).

Standard-JSON input with fixed source names and settings makes the output (including
the metadata hash appended to the bytecode) a pure function of the sources and the
compiler version, so the committed artifacts.json can be checked byte for byte.

    .venv/bin/python -m anchoring.contracts.build          # rewrite artifacts.json
    .venv/bin/python -m anchoring.contracts.build --check  # exit 1 if stale
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONTRACTS_DIR.parents[1]
ARTIFACTS = CONTRACTS_DIR / "artifacts.json"
SOURCES = ("AuthorityRegistry.sol", "AnchorRegistry.sol")
# Paris: no PUSH0, so the bytecode also runs on Besu QBFT networks without Shanghai.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "paris",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}
# Reads standard JSON on stdin; prints {"version", "output"} on stdout.
NODE_SCRIPT = """
const solc = require('solc');
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({version: solc.version(), output: output}));
});
"""


class CompilerUnavailable(RuntimeError):
    """node or the npm solc package is not installed."""


def solc_available(repo_root: Path = REPO_ROOT) -> bool:
    return shutil.which("node") is not None and (repo_root / "node_modules" / "solc").is_dir()


def standard_input() -> dict[str, Any]:
    sources = {name: {"content": (CONTRACTS_DIR / name).read_text()} for name in SOURCES}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def compile_contracts(repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    if not solc_available(repo_root):
        raise CompilerUnavailable("needs `node` and node_modules/solc (run `npm ci`)")
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [shutil.which("node") or "node", "-e", NODE_SCRIPT],
        input=json.dumps(standard_input()),
        capture_output=True,
        text=True,
        cwd=repo_root,  # so require('solc') resolves the pinned node_modules copy
        check=True,
        timeout=300,
    )
    result = json.loads(proc.stdout)
    errors = [e for e in result["output"].get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError("\n".join(e["formattedMessage"] for e in errors))
    return _artifacts(result["version"], result["output"]["contracts"])


def _artifacts(version: str, contracts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"compiler": f"soljson-v{version}", "settings": SETTINGS}
    for source, by_name in contracts.items():
        for name, data in by_name.items():
            if name.startswith("I"):  # interfaces have no bytecode worth shipping
                continue
            out[name] = {
                "source": source,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
            }
    return out


def render(artifacts: dict[str, Any]) -> str:
    return json.dumps(artifacts, indent=2, sort_keys=True) + "\n"


def load_artifacts() -> dict[str, Any]:
    return json.loads(ARTIFACTS.read_text())


def main(argv: list[str]) -> int:
    text = render(compile_contracts())
    if "--check" in argv:
        stale = not ARTIFACTS.exists() or ARTIFACTS.read_text() != text
        print("artifacts.json is stale" if stale else "artifacts.json is up to date")
        return 1 if stale else 0
    ARTIFACTS.write_text(text)
    print(f"wrote {ARTIFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
