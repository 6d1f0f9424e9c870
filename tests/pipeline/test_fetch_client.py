"""The HTTP client is built once per process and policy, not once per download thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline import fetch, netguard


def test_download_threads_share_one_client_per_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = netguard.client

    def counting(policy: netguard.Policy, timeout_s: float) -> object:
        built.append(policy)
        return real(policy, timeout_s)

    monkeypatch.setattr(netguard, "client", counting)
    monkeypatch.setattr(fetch, "_clients", {}, raising=False)
    policy = netguard.Policy(frozenset({"cdn.example"}), False)
    # like segments._run: a short-lived pool of threads per fetch, several fetches in a row
    got = []
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=4) as pool:
            got += list(pool.map(lambda _: fetch.client(policy, 5.0), range(4)))
    assert len({id(c) for c in got}) == 1
    assert len(built) == 1
    other = fetch.client(netguard.Policy(frozenset(), True), 5.0)
    assert other is not got[0] and len(built) == 2
