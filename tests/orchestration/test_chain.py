"""The served chain on a real Prefect server: a worker, generation, and every later stage started by
its trigger; and a broken batch that stops at its gate with nothing downstream."""

from __future__ import annotations

import psycopg2
import pytest
import redis

from deployments.demo import run_demo
from deployments.follow import UPSTREAM

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_chain_runs_every_stage_by_trigger(prefect_env, prepared, service_settings) -> None:
    result = run_demo(service_settings, events=3000, seed=11, timeout=900)
    chain = result.chain
    assert chain.ok, chain.to_dict()
    runs = chain.by_deployment()
    assert not runs["generate-events"].by_automation  # started by the demo
    for deployment in UPSTREAM:
        run = runs[deployment]
        assert run.state_type == "COMPLETED", run.to_dict()
        assert run.by_automation, run.to_dict()  # created by its deployment trigger
        assert run.event.endswith(".validated")
    assert len(chain.hops()) == len(UPSTREAM)

    con = psycopg2.connect(service_settings.postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM crm.user_segments")
            segments = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM crm.email_queue")
            cur.fetchone()
    finally:
        con.close()
    assert segments > 0
    client = redis.Redis.from_url(service_settings.redis_url)
    keys = list(client.scan_iter(match="reco:*", count=10_000))
    assert keys
    assert 0 < client.ttl(keys[0]) <= 24 * 3600
    client.close()
    assert result.where["postgres"]["tables"]["crm.user_segments"] == segments


def test_broken_batch_stops_at_its_gate(prefect_env, prepared, service_settings) -> None:
    result = run_demo(
        service_settings, events=2000, seed=12, timeout=600, generation={"malformed_rate": 0.3}
    )
    chain = result.chain
    assert chain.outcome == "failed", chain.to_dict()
    runs = chain.by_deployment()
    stopped = runs[chain.stopped_at]
    assert stopped.state_type == "FAILED"
    assert stopped.event.endswith(".failed")  # the gate named what failed
    assert chain.reason
    downstream = [d for d, up in UPSTREAM.items() if up == chain.stopped_at]
    for deployment in downstream:
        assert runs[deployment].run_id is None  # nothing downstream ran on that batch
