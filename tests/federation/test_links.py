"""The share-link store (federation.links) on a real SQLite database: links are
created in the caller's transaction, their key is sealed under the patient's data
key, passcodes cost a try each when wrong (atomically, even under concurrency),
links are revoked with their Consent, and used links are counted."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest
from sqlalchemy import create_engine, exc, select

from federation.errors import LinkError
from federation.links import (
    METADATA,
    PASSCODE_TRIES,
    LinkStore,
    StoredLink,
    new_link_id,
    share_link_files,
    share_links,
)
from vault.errors import IntegrityError


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'links.db'}")
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine):
    return LinkStore(engine)


DATA_KEY = bytes(range(32))


def _create(store, *, patient="p1", consent="c1", key=None, passcode=None, expires=None, **kw):
    with store.engine.begin() as conn:
        return store.create(
            conn,
            patient_id=patient,
            consent_id=consent,
            key=key if key is not None else os.urandom(32),
            data_key=kw.get("data_key", DATA_KEY),
            expires_s=expires,
            passcode=passcode,
            label=kw.get("label"),
            link_id=kw.get("link_id"),
        )


def _row(engine, link_id):
    with engine.connect() as conn:
        return conn.execute(select(share_links).where(share_links.c.link_id == link_id)).one()


# --- create / find -------------------------------------------------------------


def test_create_then_find(store):
    link_id = _create(store, patient="p1", consent="c9", expires=2_000_000_000, label="For Dr. Lin")
    assert isinstance(link_id, str) and 0 < len(link_id) <= 64
    link = store.find(link_id)
    assert isinstance(link, StoredLink)
    assert link.link_id == link_id
    assert link.patient_id == "p1"
    assert link.consent_id == "c9"
    assert link.expires_s == 2_000_000_000
    assert link.label == "For Dr. Lin"
    assert link.has_passcode is False
    assert link.attempts_left == PASSCODE_TRIES == 5
    assert link.state == "active"
    assert link.uses == 0


def test_link_ids_are_unique(store):
    ids = {_create(store) for _ in range(5)}
    assert len(ids) == 5


def test_create_is_part_of_the_callers_transaction(store, engine):
    made = []
    with pytest.raises(RuntimeError), engine.begin() as conn:
        made.append(
            store.create(
                conn,
                patient_id="p1",
                consent_id="c1",
                key=os.urandom(32),
                data_key=DATA_KEY,
                expires_s=None,
                passcode=None,
                label=None,
            )
        )
        raise RuntimeError("the Consent write failed")
    assert len(made) == 1
    assert store.find(made[0]) is None


def test_create_with_a_given_link_id(store):
    chosen = new_link_id()
    key = os.urandom(32)
    assert _create(store, link_id=chosen, key=key) == chosen
    link = store.find(chosen)
    assert link.link_id == chosen
    assert LinkStore.open_key(link, DATA_KEY) == key


def test_a_given_link_id_cannot_be_reused(store):
    chosen = new_link_id()
    _create(store, link_id=chosen, consent="c1")
    with pytest.raises(exc.IntegrityError):  # the primary key
        _create(store, link_id=chosen, consent="c2")
    assert store.find(chosen).consent_id == "c1"


def test_new_link_ids_are_random_url_safe_and_fit_the_column():
    ids = {new_link_id() for _ in range(50)}
    assert len(ids) == 50
    for link_id in ids:
        assert 0 < len(link_id) <= 64
        assert set(link_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


@pytest.mark.parametrize("link_id", ["", "x" * 65, "unknown", None, 42])
def test_find_of_unknown_or_malformed_id_is_none(store, link_id):
    _create(store)
    assert store.find(link_id) is None


# --- the sealed key --------------------------------------------------------------


def test_key_is_sealed_and_opens_with_the_data_key(store, engine):
    key = os.urandom(32)
    link_id = _create(store, key=key)
    stored = bytes(_row(engine, link_id).key_sealed)
    assert stored != key
    assert key not in stored
    link = store.find(link_id)
    assert link.key_sealed == stored
    assert LinkStore.open_key(link, DATA_KEY) == key


def test_wrong_data_key_does_not_open_the_key(store):
    link = store.find(_create(store))
    with pytest.raises(IntegrityError):
        LinkStore.open_key(link, bytes(32))


def test_sealed_key_is_bound_to_its_link_id(store):
    first = store.find(_create(store))
    second = store.find(_create(store))
    moved = dataclasses.replace(second, key_sealed=first.key_sealed)
    with pytest.raises(IntegrityError):
        LinkStore.open_key(moved, DATA_KEY)


def test_same_key_sealed_twice_differs(store):
    key = os.urandom(32)
    a, b = store.find(_create(store, key=key)), store.find(_create(store, key=key))
    assert a.key_sealed != b.key_sealed
    assert LinkStore.open_key(a, DATA_KEY) == LinkStore.open_key(b, DATA_KEY) == key


# --- passcodes -------------------------------------------------------------------


def test_passcode_is_stored_as_a_salted_hash(store, engine):
    a = _create(store, passcode="1234-abcd")
    b = _create(store, passcode="1234-abcd")
    hash_a, hash_b = bytes(_row(engine, a).passcode_hash), bytes(_row(engine, b).passcode_hash)
    assert b"1234-abcd" not in hash_a
    assert hash_a != hash_b  # each link its own salt
    assert store.find(a).has_passcode is True


def test_right_passcode_is_none_and_costs_nothing(store):
    link_id = _create(store, passcode="open sesame")
    assert store.check_passcode(link_id, "open sesame") is None
    assert store.check_passcode(link_id, "open sesame") is None
    link = store.find(link_id)
    assert link.attempts_left == 5
    assert link.state == "active"


def test_wrong_passcodes_count_down_to_exhausted(store):
    link_id = _create(store, passcode="right")
    for expected in (4, 3, 2, 1):
        assert store.check_passcode(link_id, "wrong") == expected
        link = store.find(link_id)
        assert link.attempts_left == expected
        assert link.state == "active"
    assert store.check_passcode(link_id, "wrong") == 0
    link = store.find(link_id)
    assert link.attempts_left == 0
    assert link.state == "exhausted"
    for _ in range(3):
        assert store.check_passcode(link_id, "still wrong") == 0
    link = store.find(link_id)
    assert link.attempts_left == 0
    assert link.state == "exhausted"
    assert link.state_at(0) == "exhausted"


def test_a_right_passcode_does_not_restore_tries(store):
    link_id = _create(store, passcode="right")
    assert store.check_passcode(link_id, "wrong") == 4
    assert store.check_passcode(link_id, "right") is None
    assert store.find(link_id).attempts_left == 4


@pytest.mark.parametrize("given", ["", None, 1234, b"right", ["right"], "Right", "right "])
def test_anything_but_the_exact_passcode_is_wrong(store, given):
    link_id = _create(store, passcode="right")
    assert store.check_passcode(link_id, given) == 4


def test_wrong_passcode_on_one_link_leaves_others_alone(store):
    a = _create(store, passcode="a")
    b = _create(store, passcode="b")
    assert store.check_passcode(a, "b") == 4
    assert store.find(b).attempts_left == 5


def test_check_passcode_on_a_link_without_one_is_a_link_error(store):
    link_id = _create(store, passcode=None)
    with pytest.raises(LinkError):
        store.check_passcode(link_id, "anything")
    assert store.find(link_id).attempts_left == 5


def test_check_passcode_on_an_unknown_link_is_a_link_error(store):
    with pytest.raises(LinkError):
        store.check_passcode("no-such-link", "anything")


@pytest.mark.parametrize("threads", [3, 8])
def test_concurrent_wrong_passcodes_never_overspend(tmp_path, threads):
    engine = create_engine(f"sqlite:///{tmp_path / 'race.db'}", pool_size=threads)
    METADATA.create_all(engine)
    store = LinkStore(engine)
    try:
        link_id = _create(store, passcode="right")
        barrier = threading.Barrier(threads)
        results: list[int | None] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def guess():
            try:
                barrier.wait()
                left = store.check_passcode(link_id, "wrong")
                with lock:
                    results.append(left)
            except BaseException as error:  # reported below, not lost in the thread
                with lock:
                    errors.append(error)

        workers = [threading.Thread(target=guess) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert errors == []
        assert len(results) == threads
        assert all(isinstance(left, int) and left >= 0 for left in results)
        expected_final = max(0, PASSCODE_TRIES - threads)
        # SQLite serialises the writers: each wrong guess saw its own count
        assert sorted(results) == sorted(max(0, PASSCODE_TRIES - i) for i in range(1, threads + 1))
        link = store.find(link_id)
        assert link.attempts_left == expected_final
        assert link.state == ("exhausted" if expected_final == 0 else "active")
    finally:
        engine.dispose()


# --- expiry, revocation, use -----------------------------------------------------


def test_state_at_expires_at_expires_s(store):
    link = store.find(_create(store, expires=1_000))
    assert link.state_at(999) == "active"
    assert link.state_at(1_000) == "expired"
    assert link.state_at(5_000) == "expired"


def test_a_link_without_expiry_never_expires(store):
    link = store.find(_create(store, expires=None))
    assert link.state_at(2**40) == "active"


def test_revoke_for_revokes_only_those_consents(store, engine):
    one = _create(store, consent="c1")
    one_more = _create(store, consent="c1")
    two = _create(store, consent="c2")
    three = _create(store, consent="c3")
    with engine.begin() as conn:
        assert store.revoke_for(conn, ["c1", "c3"]) == 3
    assert store.find(one).state == "revoked"
    assert store.find(one_more).state == "revoked"
    assert store.find(three).state == "revoked"
    assert store.find(two).state == "active"
    # an expiry never turns a revoked link back into anything else
    assert store.find(one).state_at(2**40) == "revoked"
    with engine.begin() as conn:
        assert store.revoke_for(conn, ["c1"]) == 0  # already revoked
        assert store.revoke_for(conn, []) == 0
    assert store.find(two).state == "active"


def test_revoke_for_is_part_of_the_callers_transaction(store, engine):
    link_id = _create(store, consent="c1")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        store.revoke_for(conn, ["c1"])
        raise RuntimeError("the Consent update failed")
    assert store.find(link_id).state == "active"


def test_record_use_counts_per_link(store):
    a, b = _create(store), _create(store)
    store.record_use(a)
    store.record_use(a)
    store.record_use(a)
    assert store.find(a).uses == 3
    assert store.find(b).uses == 0
    store.record_use(b)
    assert store.find(b).uses == 1


def test_for_patient_lists_only_that_patients_links(store):
    mine = {_create(store, patient="p1", consent="c1"), _create(store, patient="p1")}
    theirs = _create(store, patient="p2")
    found = store.for_patient("p1")
    assert {link.link_id for link in found} == mine
    assert all(link.patient_id == "p1" for link in found)
    assert [link.link_id for link in store.for_patient("p2")] == [theirs]
    assert store.for_patient("nobody") == []


# --- files handed out by location ------------------------------------------------


def test_a_file_is_kept_for_its_link_while_it_lasts(store):
    link_id = _create(store)
    file_id = store.put_file(link_id, "a.b.c.d.e")
    assert store.take_file(link_id, file_id) == "a.b.c.d.e"
    assert store.take_file(link_id, file_id) == "a.b.c.d.e"  # retries within the minute
    other = _create(store, consent="c2")
    assert store.take_file(other, file_id) is None  # another link's id does not open it
    assert store.take_file(link_id, "nope") is None
    assert store.take_file(link_id, "x" * 100) is None


def test_an_expired_file_or_one_of_a_dead_link_is_gone(store):
    link_id = _create(store)
    expired = store.put_file(link_id, "old", ttl_s=0)
    assert store.take_file(link_id, expired) is None
    kept = store.put_file(link_id, "new")
    with store.engine.begin() as conn:
        store.revoke_for(conn, ["c1"])
    assert store.take_file(link_id, kept) is None
    # putting a file drops the expired ones of every link
    with store.engine.connect() as conn:
        ids = {row.file_id for row in conn.execute(select(share_link_files))}
    assert expired not in ids and kept in ids
