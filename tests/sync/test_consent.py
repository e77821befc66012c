"""The email queue addresses only users whose marketing consent is given at the mart's as-of time
(and still is): the address comes from the restricted store at sync time, never from the mart."""

from __future__ import annotations

from datetime import timedelta

import psycopg2
import pytest

from searchflow import restricted
from searchflow.sync import run_reconcile, run_sync

from .marts import AS_OF, contact_row, trigger_row

pytestmark = pytest.mark.services

DAY = timedelta(days=1)


def queue(url: str) -> dict[str, str | None]:
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT user_id, email FROM crm.email_queue")
        rows = dict(cur.fetchall())
    con.close()
    return rows


def test_only_users_consenting_at_the_as_of_time_get_an_email(
    service_settings, build_marts, postgres_url
):
    triggers = [trigger_row(i) for i in range(7)]
    contacts = [
        contact_row("user_0"),  # consented since signup
        # withdrew consent before the as-of time: must never be emailed
        contact_row("user_1", valid_to=AS_OF - 3 * DAY),
        contact_row("user_1", consent=False, valid_from=AS_OF - 3 * DAY),
        # gave consent before the as-of time
        contact_row("user_2", consent=False, valid_to=AS_OF - 2 * DAY),
        contact_row("user_2", valid_from=AS_OF - 2 * DAY),
        # consented at the as-of time, withdrew since: the withdrawal wins
        contact_row("user_3", valid_to=AS_OF + DAY),
        contact_row("user_3", consent=False, valid_from=AS_OF + DAY),
        # user_4 has no profile: consent is never assumed
        # gave consent only after the as-of time
        contact_row("user_5", consent=False, valid_to=AS_OF + DAY),
        contact_row("user_5", valid_from=AS_OF + DAY),
        # moved address after the as-of time: the address at sync time is used
        contact_row("user_6", valid_to=AS_OF + DAY, email="old6@example.test"),
        contact_row("user_6", valid_from=AS_OF + DAY, email="new6@example.test"),
    ]
    build_marts(triggers=triggers, contacts=contacts)

    report = run_sync(service_settings, "email_triggers")

    assert report["status"] == "succeeded" and report["failed"] == 0
    assert queue(postgres_url) == {
        "user_0": "user_0@example.test",
        "user_2": "user_2@example.test",
        "user_6": "new6@example.test",
    }
    drift = run_reconcile(service_settings, "email_triggers")
    assert drift["mart_rows"] == 3 and drift["missing"] == 0


def test_a_withdrawal_stops_later_emails(service_settings, build_marts, postgres_url):
    build_marts(triggers=[trigger_row(0)], contacts=[contact_row("user_0")])
    run_sync(service_settings, "email_triggers")
    assert set(queue(postgres_url)) == {"user_0"}

    later = [(f"trg_late_{i}", *trigger_row(i)[1:]) for i in (0, 1)]
    withdrawn = [
        contact_row("user_0", valid_to=AS_OF - DAY),
        contact_row("user_0", consent=False, valid_from=AS_OF - DAY),
        contact_row("user_1", consent=False),
    ]
    build_marts(triggers=later, contacts=withdrawn)
    report = run_sync(service_settings, "email_triggers")

    assert report["read"] == 0 and report["inserted"] == 0
    assert set(queue(postgres_url)) == {"user_0"}  # only the email queued while consent was given


def test_without_the_restricted_store_nobody_is_emailed(
    service_settings, build_marts, postgres_url
):
    build_marts(triggers=[trigger_row(i) for i in range(3)], contacts=[])
    store = restricted.restricted_path(service_settings.warehouse_path)
    store.unlink()

    report = run_sync(service_settings, "email_triggers")

    assert report["status"] == "succeeded" and report["read"] == 0
    assert queue(postgres_url) == {}
    assert not store.exists()  # the sync only ever reads the store; it never creates it


def test_the_store_is_owner_only(settings):
    path = restricted.ensure_store(settings.warehouse_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
