"""The remembering chain reader (federation.verify.RememberingReader): while the
chain is down it answers from the anchored roots and the authorities it has seen,
and only from those."""

from __future__ import annotations

import pytest

from federation.verify import RememberingReader


class ChainDown(ConnectionError):
    pass


class FakeReader:
    """A ChainReader: a deployment, anchored roots and authorities, or a dead chain."""

    def __init__(self):
        self.deployment = "deployment-1"
        self.roots: dict[bytes, object] = {}
        self.authority_map: dict[str, str] = {}
        self.down = False
        self.lookups = 0
        self.authority_reads = 0

    def lookup(self, root: bytes):
        self.lookups += 1
        if self.down:
            raise ChainDown("rpc unreachable")
        return self.roots.get(root)

    def authorities(self) -> dict[str, str]:
        self.authority_reads += 1
        if self.down:
            raise ChainDown("rpc unreachable")
        return dict(self.authority_map)


class Factory:
    """The node's reader factory; ``broken`` makes the factory itself fail."""

    def __init__(self, reader: FakeReader):
        self.reader = reader
        self.broken = False

    def __call__(self) -> FakeReader:
        if self.broken:
            raise ChainDown("cannot reconnect")
        return self.reader


ROOT_A, ROOT_B = b"\xaa" * 32, b"\xbb" * 32
ANCHOR_A = ("0xTW", 1_700_000_000)


@pytest.fixture
def chain():
    reader = FakeReader()
    reader.roots[ROOT_A] = ANCHOR_A
    reader.authority_map = {"0xTW": "TW", "0xJP": "JP"}
    return reader


@pytest.fixture
def factory(chain):
    return Factory(chain)


def test_deployment_is_the_underlying_readers(chain, factory):
    assert RememberingReader(factory).deployment == "deployment-1"
    chain.deployment = "deployment-2"
    assert RememberingReader(factory).deployment == "deployment-2"


def test_lookup_passes_through_while_the_chain_is_up(chain, factory):
    reader = RememberingReader(factory)
    assert reader.lookup(ROOT_A) == ANCHOR_A
    assert reader.lookup(ROOT_B) is None
    assert chain.lookups == 2


def test_a_seen_root_is_answered_while_the_chain_is_down(chain, factory):
    reader = RememberingReader(factory, reread_after=0)  # always ask the chain first
    assert reader.lookup(ROOT_A) == ANCHOR_A
    chain.down = True
    assert reader.lookup(ROOT_A) == ANCHOR_A
    assert chain.lookups == 2  # the chain was still asked first


def test_a_seen_root_is_not_read_again_for_a_while(chain, factory):
    """One summary's hundreds of resources share a handful of roots: one read each."""
    reader = RememberingReader(factory, reread_after=3600)
    for _ in range(5):
        assert reader.lookup(ROOT_A) == ANCHOR_A
    assert chain.lookups == 1
    assert reader.lookup(ROOT_B) is None and reader.lookup(ROOT_B) is None
    assert chain.lookups == 3  # a root not anchored (yet) is asked each time


def test_a_seen_root_is_answered_when_the_factory_cannot_reconnect(factory):
    reader = RememberingReader(factory)
    reader.lookup(ROOT_A)
    factory.broken = True
    assert reader.lookup(ROOT_A) == ANCHOR_A


def test_an_unseen_root_reraises_while_the_chain_is_down(chain, factory):
    reader = RememberingReader(factory)
    reader.lookup(ROOT_A)
    chain.down = True
    with pytest.raises(ChainDown):
        reader.lookup(ROOT_B)


def test_a_root_not_anchored_is_not_remembered(chain, factory):
    reader = RememberingReader(factory)
    assert reader.lookup(ROOT_B) is None  # not anchored (yet): nothing to remember
    chain.down = True
    with pytest.raises(ChainDown):
        reader.lookup(ROOT_B)


def test_the_chains_answer_wins_while_it_is_up(chain, factory):
    reader = RememberingReader(factory, reread_after=0)
    reader.lookup(ROOT_A)
    chain.roots[ROOT_A] = ("0xTW", 1_800_000_000)
    assert reader.lookup(ROOT_A) == ("0xTW", 1_800_000_000)
    chain.down = True
    assert reader.lookup(ROOT_A) == ("0xTW", 1_800_000_000)  # the latest one seen


def test_nothing_is_remembered_across_instances(chain, factory):
    RememberingReader(factory).lookup(ROOT_A)
    chain.down = True
    with pytest.raises(ChainDown):
        RememberingReader(factory).lookup(ROOT_A)


def test_authorities_are_answered_from_memory_while_the_chain_is_down(chain, factory):
    reader = RememberingReader(factory)
    assert reader.authorities() == {"0xTW": "TW", "0xJP": "JP"}
    chain.down = True
    assert reader.authorities() == {"0xTW": "TW", "0xJP": "JP"}
    factory.broken = True
    assert reader.authorities() == {"0xTW": "TW", "0xJP": "JP"}


def test_remembered_authorities_are_a_copy(chain, factory):
    reader = RememberingReader(factory)
    reader.authorities()
    chain.down = True
    reader.authorities()["0xEVIL"] = "XX"
    assert reader.authorities() == {"0xTW": "TW", "0xJP": "JP"}


def test_authorities_follow_the_chain_while_it_is_up(chain, factory):
    reader = RememberingReader(factory)
    reader.authorities()
    chain.authority_map = {"0xTW": "TW"}  # JP voted out
    assert reader.authorities() == {"0xTW": "TW"}
    chain.down = True
    assert reader.authorities() == {"0xTW": "TW"}


def test_authorities_reraise_when_never_seen(chain, factory):
    reader = RememberingReader(factory)
    chain.down = True
    with pytest.raises(ChainDown):
        reader.authorities()
    factory.broken = True
    with pytest.raises(ChainDown, match="reconnect"):
        reader.authorities()
