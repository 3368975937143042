"""`phrx federation join | vote | list | rotate-keys` against a real anvil started as
`phrx chain dev` does (open AuthorityRegistry: the first join founds the trust list)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from anchoring.devchain import anvil_available
from anchoring.node_chain import open_shared_dev_chain
from federation import node_keys
from fhir_server.cli import main

pytestmark = pytest.mark.skipif(not anvil_available(), reason="node_modules/.bin/anvil missing")


@pytest.fixture
def chain(tmp_path: Path):
    """A fresh shared dev chain (anvil starts in well under a second): its URL."""
    dev, _ = open_shared_dev_chain(tmp_path / "chain")
    try:
        yield dev.url
    finally:
        dev.stop()


def phrx(*args: str, env: dict | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def ok(*args: str, env: dict | None = None) -> str:
    result = phrx(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def error_line(result: Result) -> str:
    """An expected failure: exit status 1, exactly one ``phrx: error:`` line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("phrx: error: "), lines[0]
    return lines[0]


def base(country: str) -> str:
    return f"http://{country.lower()}.example/fhir"


def data(tmp_path: Path, country: str) -> Path:
    return tmp_path / country.lower()


def join(tmp_path: Path, url: str, country: str, base_url: str | None = None) -> str:
    return ok(
        "federation",
        "join",
        "--data-dir",
        str(data(tmp_path, country)),
        "--chain",
        url,
        "--country",
        country,
        "--base-url",
        base_url or base(country),
    )


def vote(tmp_path: Path, url: str, voter: str, *what: str) -> Result:
    return phrx(
        "federation", "vote", "--data-dir", str(data(tmp_path, voter)), "--chain", url, *what
    )


def listing(tmp_path: Path, url: str, who: str = "tw") -> str:
    return ok("federation", "list", "--data-dir", str(tmp_path / who), "--chain", url)


def authority_lines(text: str) -> dict[str, str]:
    """country -> its line in the authorities part of `phrx federation list`."""
    head = text.partition("open proposals")[0]
    return {
        line.split()[0]: line for line in head.splitlines()[1:] if re.match(r"  [A-Z]{2} ", line)
    }


def proposal_lines(text: str) -> list[str]:
    return [line.strip() for line in text.partition("open proposals")[2].splitlines()[1:]]


def proposal_id(out: str) -> str:
    match = re.match(r"proposal (\d+)[: ]", out)
    assert match, out
    return match.group(1)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_first_join_admits_at_once_with_private_keys(tmp_path: Path, chain: str) -> None:
    out = join(tmp_path, chain, "TW")
    assert out.startswith("admitted: TW is the first authority of this chain"), out
    keys_dir = data(tmp_path, "TW") / "keys"
    for name in ("chain.key", node_keys.SIGNING_FILE, node_keys.ENCRYPTION_FILE):
        assert mode(keys_dir / name) == 0o600, name
    assert mode(keys_dir) == 0o700
    text = listing(tmp_path, chain)
    assert text.startswith("authorities (1):\n")
    line = authority_lines(text)["TW"]
    kid = node_keys.load_or_create(data(tmp_path, "TW")).kid
    assert base("TW") in line and f"kid {kid}" in line and "encryption yes" in line
    assert line.endswith("(this node)")
    assert re.search(r"  TW  0x[0-9a-fA-F]{40}  ", line)
    assert proposal_lines(text) == []


def test_join_again_is_idempotent_and_updates_a_changed_url(tmp_path: Path, chain: str) -> None:
    join(tmp_path, chain, "TW")
    again = join(tmp_path, chain, "TW")
    assert "TW is already an authority" in again and "match" in again
    text = listing(tmp_path, chain)
    assert len(authority_lines(text)) == 1 and proposal_lines(text) == []

    moved = join(tmp_path, chain, "TW", "https://tw.example/r4")
    assert "put this node's URL and keys on chain" in moved
    assert "https://tw.example/r4" in authority_lines(listing(tmp_path, chain))["TW"]

    wrong = phrx(
        "federation",
        "join",
        "--data-dir",
        str(data(tmp_path, "TW")),
        "--chain",
        chain,
        "--country",
        "PH",
        "--base-url",
        base("PH"),
    )
    assert "already the authority of TW" in error_line(wrong)


def test_second_node_is_admitted_by_vote(tmp_path: Path, chain: str) -> None:
    join(tmp_path, chain, "TW")
    out = join(tmp_path, chain, "PH")
    pid = proposal_id(out)
    assert out.strip() == (
        f"proposal {pid}: PH asks to join; authorities vote with: "
        f"phrx federation vote --data-dir <theirs> --chain {chain} {pid}"
    )
    # a second `join` while the request is open files no second proposal
    assert f"proposal {pid}: PH already asked to join" in join(tmp_path, chain, "PH")

    text = listing(tmp_path, chain, "ph")  # a candidate may read the trust list too
    assert list(authority_lines(text)) == ["TW"]
    assert proposal_lines(text) == [f"{pid}  add  PH  {base('PH')}  0/1 votes"]

    voted = vote(tmp_path, chain, "TW", pid)
    assert voted.exit_code == 0, voted.output
    assert voted.stdout.strip() == f"proposal {pid} (add PH): executed"
    text = listing(tmp_path, chain)
    assert sorted(authority_lines(text)) == ["PH", "TW"] and proposal_lines(text) == []
    assert "encryption yes" in authority_lines(text)["PH"]


def _admit(tmp_path: Path, chain: str, country: str, voters: list[str]) -> None:
    pid = proposal_id(join(tmp_path, chain, country))
    for voter in voters:
        assert vote(tmp_path, chain, voter, pid).exit_code == 0


def test_third_node_needs_two_of_two_votes(tmp_path: Path, chain: str) -> None:
    join(tmp_path, chain, "TW")
    _admit(tmp_path, chain, "PH", ["TW"])
    pid = proposal_id(join(tmp_path, chain, "TH"))
    assert f"{pid}  add  TH  {base('TH')}  0/2 votes" in proposal_lines(listing(tmp_path, chain))

    first = vote(tmp_path, chain, "TW", pid)
    assert first.stdout.strip() == f"proposal {pid} (add TH): pending, 1/2 votes"
    assert "TH" not in authority_lines(listing(tmp_path, chain))
    twice = vote(tmp_path, chain, "TW", pid)
    assert "already voted" in error_line(twice)

    second = vote(tmp_path, chain, "PH", pid)
    assert second.stdout.strip() == f"proposal {pid} (add TH): executed"
    text = listing(tmp_path, chain)
    assert sorted(authority_lines(text)) == ["PH", "TH", "TW"] and proposal_lines(text) == []

    done = vote(tmp_path, chain, "TH", pid)
    assert "already executed" in error_line(done)


def test_remove_an_authority(tmp_path: Path, chain: str) -> None:
    """More than 2/3 of the other authorities must agree (the subject's own vote does
    not count): of 3, the other 2; of 4, the other 3."""
    join(tmp_path, chain, "TW")
    _admit(tmp_path, chain, "PH", ["TW"])
    _admit(tmp_path, chain, "TH", ["TW", "PH"])

    proposed = vote(tmp_path, chain, "TW", "--remove", "TH")
    pid = proposal_id(proposed.stdout)
    assert proposed.stdout.strip() == f"proposal {pid} (remove TH): pending, 1/2 votes"
    assert proposal_lines(listing(tmp_path, chain)) == [
        f"{pid}  remove  TH  {base('TH')}  1/2 votes"
    ]
    # TH cannot keep itself: its vote does not count
    assert "pending, 1/2 votes" in vote(tmp_path, chain, "TH", pid).stdout
    # PH votes on TW's proposal (no second one)
    seconded = vote(tmp_path, chain, "PH", "--remove", "th")
    assert seconded.stdout.strip() == f"proposal {pid} (remove TH): executed"
    text = listing(tmp_path, chain)
    assert sorted(authority_lines(text)) == ["PH", "TW"] and proposal_lines(text) == []
    assert "no authority" in error_line(vote(tmp_path, chain, "TW", "--remove", "TH"))

    _admit(tmp_path, chain, "SG", ["TW", "PH"])
    _admit(tmp_path, chain, "MY", ["TW", "PH", "SG"])
    pid = proposal_id(vote(tmp_path, chain, "TW", "--remove", "MY").stdout)
    assert "pending, 2/3 votes" in vote(tmp_path, chain, "PH", "--remove", "MY").stdout
    assert (
        vote(tmp_path, chain, "SG", pid).stdout.strip() == f"proposal {pid} (remove MY): executed"
    )
    assert sorted(authority_lines(listing(tmp_path, chain))) == ["PH", "SG", "TW"]


def test_expected_failures_are_one_error_line(tmp_path: Path, chain: str) -> None:
    join(tmp_path, chain, "TW")
    pid = proposal_id(join(tmp_path, chain, "PH"))
    # a candidate is no authority yet: it cannot vote, not even for itself
    line = error_line(vote(tmp_path, chain, "PH", pid))
    assert "not an authority" in line
    assert "not an authority" in error_line(vote(tmp_path, chain, "PH", "--remove", "TW"))
    assert "no such proposal" in error_line(vote(tmp_path, chain, "TW", "99"))
    assert "no chain account" in error_line(vote(tmp_path, chain, "XX", pid))
    assert "PROPOSAL_ID or --remove" in error_line(vote(tmp_path, chain, "TW"))
    taken = phrx(
        "federation",
        "join",
        "--data-dir",
        str(tmp_path / "tw2"),
        "--chain",
        chain,
        "--country",
        "TW",
        "--base-url",
        base("TW"),
    )
    assert "TW already has an authority" in error_line(taken)
    bad = phrx(
        "federation",
        "join",
        "--data-dir",
        str(tmp_path / "x"),
        "--chain",
        chain,
        "--country",
        "Taiwan",
        "--base-url",
        base("TW"),
    )
    assert "ISO 3166-1" in error_line(bad)
    stale = tmp_path / "stale"
    (stale / "chain").mkdir(parents=True)
    doc = {"chain_id": 31337, "anchor_registry": "0x" + "11" * 20}
    doc["authority_registry"] = "0x" + "22" * 20
    (stale / "chain" / "deployment.json").write_text(json.dumps(doc))
    no_code = phrx("federation", "list", "--data-dir", str(stale), "--chain", chain)
    assert "no AuthorityRegistry at 0x2222" in error_line(no_code)
    assert "rotate" in error_line(
        phrx("federation", "rotate-keys", "--data-dir", str(data(tmp_path, "PH")), "--chain", chain)
    )


def test_unreachable_chain(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"  # nothing listens there any more
    assert "unreachable" in error_line(
        phrx("federation", "list", "--data-dir", str(tmp_path / "tw"), "--chain", url)
    )
    joined = phrx(
        "federation",
        "join",
        "--data-dir",
        str(tmp_path / "tw"),
        "--chain",
        url,
        "--country",
        "TW",
        "--base-url",
        base("TW"),
    )
    assert "unreachable" in error_line(joined)


def test_rotate_keys_replaces_the_key_on_chain(tmp_path: Path, chain: str) -> None:
    join(tmp_path, chain, "TW")
    tw = data(tmp_path, "TW")
    before = node_keys.load_or_create(tw)
    jwk_file = tw / "keys" / node_keys.SIGNING_FILE
    # PHRX_CHAIN stands in for --chain
    out = ok("federation", "rotate-keys", "--data-dir", str(tw), env={"PHRX_CHAIN": chain})
    after = node_keys.load_or_create(tw)
    assert after.kid != before.kid
    assert after.encryption_public_bytes() != before.encryption_public_bytes()
    assert f"signing kid {after.kid} (was {before.kid})" in out
    assert mode(jwk_file) == 0o600
    assert mode(tw / "keys" / node_keys.ENCRYPTION_FILE) == 0o600
    line = authority_lines(listing(tmp_path, chain))["TW"]
    assert f"kid {after.kid}" in line and base("TW") in line  # URL unchanged
    assert "private" not in json.dumps(line) and '"d"' not in line
    # the chain now has the rotated keys: join again changes nothing
    assert "match" in join(tmp_path, chain, "TW")
