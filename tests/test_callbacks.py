"""Callbacks reach only allowed receivers, at the address checked, within a deadline, and always signed."""

import socket
import threading
import time

import pytest

from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.jobs.callback_targets import CallbackTargets, TargetRefused
from recursum.service.jobs.callbacks import CallbackDeliverer
from recursum.service.settings import hash_secret
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store


@pytest.mark.parametrize(("url", "hosts"), [
    ("https://hooks.example.org/done", {"hooks.example.org"}),
    ("http://hooks.example.org:80/done", {"hooks.example.org"}),
    ("https://hooks.example.org:8443/done", {"hooks.example.org:8443"}),
])
def test_an_allowlisted_host_on_an_allowed_port_passes(url, hosts):
    assert CallbackTargets(hosts=frozenset(hosts)).check_url(url).host == "hooks.example.org"


@pytest.mark.parametrize(("url", "reason"), [
    ("https://hooks.example.org:8443/done", "port 8443 is not allowed"),  # an entry without a port: 80, 443
    ("https://elsewhere.example.org/done", "not in RECURSUM_CALLBACK_HOSTS"),
    ("ftp://hooks.example.org/done", "http(s)"),
    ("http://hooks.example.org:99999/done", "not a valid URL"),
])
def test_anything_else_is_refused_with_the_rule_it_broke(url, reason):
    with pytest.raises(TargetRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CallbackTargets(hosts=frozenset({"hooks.example.org"})).check_url(url)


@pytest.mark.parametrize(("address", "public_only", "private_allowed"), [
    ("93.184.215.14", True, True),
    ("127.0.0.1", False, True),
    ("10.1.2.3", False, True),
    ("::ffff:127.0.0.1", False, True),  # IPv4 loopback spelled as IPv6
    ("169.254.169.254", False, False),  # cloud metadata: never
    ("fe80::1", False, False),
    ("0.0.0.0", False, False),
    ("2002:a9fe:a9fe::1", False, False),  # 6to4 of 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, False),  # Teredo
    ("fec0::1", False, False),  # site-local
])
def test_internal_addresses_are_refused_and_link_local_even_where_private_ones_are_allowed(
        address, public_only, private_allowed):
    assert CallbackTargets().address_allowed(address) is public_only
    assert CallbackTargets(allow_private=True).address_allowed(address) is private_allowed


def test_a_name_with_any_internal_address_is_refused():
    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
             (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]
    with pytest.raises(TargetRefused, match="10.0.0.5"):
        CallbackTargets().pick_address(infos)


class _Listener:
    """A loopback TCP server that records connections; `drip` answers one byte a second, forever."""

    def __init__(self, drip: bool = False) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.drip = drip
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.socket.accept()
            self.connections += 1
            if self.drip:
                threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    @staticmethod
    def _drip(connection: socket.socket) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                connection.send(bytes([byte]))
                time.sleep(1)
        except OSError:
            pass


def _deliverer(tmp_path, url: str, targets: CallbackTargets, keys: dict[str, str] | None = None,
               deadline: float = 10.0) -> tuple[CallbackDeliverer, Store]:
    store = Store(f"sqlite:///{tmp_path / 'callbacks.db'}")
    document = make_document("Alice followed the White Rabbit.")
    store.jobs.put_document(document)
    store.jobs.create_job(JobRecord(id="job-1", owner="alice", document_id=document.id, title="",
                                    config=TreeConfig(), created=time.time(), callback_url=url))
    store.jobs.update_job("job-1", status="done", finished=time.time())
    keys = {"alice": hash_secret("a" * 32)} if keys is None else keys
    return CallbackDeliverer(store, keys, targets, deadline=deadline), store


def _deliver_once(deliverer: CallbackDeliverer, store: Store) -> str:
    [delivery] = store.callbacks.claim_due("local", 1, lease_seconds=30)
    return deliverer.deliver(delivery)


def test_an_allowlisted_name_that_resolves_to_loopback_gets_nothing(tmp_path):
    listener = _Listener()
    targets = CallbackTargets(hosts=frozenset({f"localhost:{listener.port}"}))  # private not allowed
    deliverer, store = _deliverer(tmp_path, f"http://localhost:{listener.port}/hook", targets)
    assert _deliver_once(deliverer, store) == "refused"
    assert listener.connections == 0
    assert store.callbacks.claim_due("local", 1, lease_seconds=30) == []  # refused is final


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(tmp_path):
    listener = _Listener(drip=True)
    targets = CallbackTargets(hosts=frozenset({f"127.0.0.1:{listener.port}"}), allow_private=True)
    deliverer, store = _deliverer(tmp_path, f"http://127.0.0.1:{listener.port}/hook", targets, deadline=1.0)
    started = time.monotonic()
    assert _deliver_once(deliverer, store) == "unreachable"
    assert time.monotonic() - started < 3
    assert listener.connections == 1


def test_a_callback_whose_key_is_gone_is_never_sent_unsigned(tmp_path):
    listener = _Listener()
    targets = CallbackTargets(hosts=frozenset({f"127.0.0.1:{listener.port}"}), allow_private=True)
    deliverer, store = _deliverer(tmp_path, f"http://127.0.0.1:{listener.port}/hook", targets, keys={})
    assert _deliver_once(deliverer, store) == "unsigned"
    assert listener.connections == 0
    assert [a.outcome for a in store.callbacks.attempts("job-1")] == ["unsigned"]
