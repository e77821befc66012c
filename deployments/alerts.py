"""Alerts: a webhook notification block and the automations that post to it (``searchflow deploy``).

Deployment triggers in ``prefect.yaml`` can only start their own deployment, and deployment SLAs
exist only in Prefect Cloud, so the alerts are automations created through Prefect's API, each with
a ``SendNotification`` action on one ``CustomWebhookNotificationBlock``. The block posts
``{"text": "<subject>\\n<body>"}``, the message a Slack incoming webhook (and Mattermost, Rocket.Chat,
Discord's /slack endpoint, ...) accepts. The URL is ``SEARCHFLOW_ALERT_WEBHOOK_URL``; unset, nothing
is created and :func:`ensure_alerts` says so.

What fires, once each:

- **a failed or errored gate** (``searchflow.<stage>.failed``, emitted by the flow with the batch id
  and the gate's one-line reason naming every failed expectation);
- **a flow run that ends Failed, Crashed or TimedOut for another reason**: the run a failed gate
  fails is left out (its state message names ``GateFailed``), so a held batch alerts once;
- **a missed freshness SLA** (proactive): a generated batch passed its gate and no ingestion batch
  passed within ``FRESHNESS_SLA``, i.e. data is generated but nothing reaches the warehouse;
- **drift between a mart and its destination**, found by the scheduled ``reconcile`` deployment
  (:mod:`flows.reconcile`): one ``searchflow.reconcile.drift`` event, so one alert, per drifted
  destination. The run ends Failed under the state name ``Drifted``, which the flow-run alert
  does not listen for, so a drift alerts once.

Each message names the stage, the batch (or the destination), the reasons and links the flow run
in the UI (or names its id when the server has no UI URL).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from searchflow.contract import EVENT_PREFIX, event_name

BLOCK_NAME = "searchflow-alerts"
PREFIX = "searchflow alert: "
GATE_AUTOMATION = f"{PREFIX}gate failed"
RUN_AUTOMATION = f"{PREFIX}flow run failed"
FRESHNESS_AUTOMATION = f"{PREFIX}no ingestion"
DRIFT_AUTOMATION = f"{PREFIX}destination drift"
AUTOMATIONS: tuple[str, ...] = (
    GATE_AUTOMATION,
    RUN_AUTOMATION,
    FRESHNESS_AUTOMATION,
    DRIFT_AUTOMATION,
)
FRESHNESS_SLA = timedelta(minutes=15)
# Every SearchFlow deployment carries this tag (prefect.yaml), and so do its flow runs.
TAG = "searchflow"
# A Slack-compatible message: one "text" field.
SLACK_JSON: dict[str, str] = {"text": "{{subject}}\n{{body}}"}

GATE_SUBJECT = (
    "SearchFlow: {{ event.resource['searchflow.stage'] }} gate failed on batch "
    "{{ event.payload.batch_id }}"
)
GATE_BODY = """\
stage: {{ event.resource['searchflow.stage'] }}
batch: {{ event.payload.batch_id }}
failed expectations: {{ event.payload.reason }}
run: {% if flow_run %}{{ flow_run|ui_url or 'flow run ' ~ flow_run.id }}{% else %}not run by Prefect{% endif %}"""

RUN_SUBJECT = (
    "SearchFlow: flow run {{ flow_run.name }} of {{ flow.name }} ended "
    "{{ event.resource['prefect.state-name'] }}"
)
RUN_BODY = """\
stage: {{ flow.name }}
batch: {{ flow_run.parameters.get('parent_batch_id') or 'not started from a batch' }}
failed expectations: none (not a gate failure)
reason: {{ event.resource['prefect.state-message'] or 'no message' }}
run: {{ flow_run|ui_url or 'flow run ' ~ flow_run.id }}"""

FRESHNESS_SUBJECT = "SearchFlow: no ingestion batch passed its gate for {minutes} minutes"
FRESHNESS_BODY = """\
stage: ingestion
batch: the generated batch {{{{ event.payload.batch_id }}}} (and any after it) is not ingested
failed expectations: freshness SLA, an ingestion batch validated within {minutes} minutes
run: check the ingest-events runs and the worker"""

DRIFT_SUBJECT = (
    "SearchFlow: {{ event.payload.destination }} drifted from mart version "
    "{{ event.payload.mart_version }}"
)
DRIFT_BODY = """\
stage: reconcile ({{ event.payload.sync }} sync)
batch: mart version {{ event.payload.mart_version }}
drift: {{ event.payload.summary }}
keys: {{ event.payload.sample or 'see `searchflow reconcile ' ~ event.payload.sync ~ '`' }}
repair: searchflow sync {{ event.payload.sync }}
run: {% if flow_run %}{{ flow_run|ui_url or 'flow run ' ~ flow_run.id }}{% else %}not run by Prefect{% endif %}"""


def webhook_block(url: str) -> Any:
    """The notification block posting Slack-compatible JSON to ``url``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(
        name=BLOCK_NAME, url=url, method="POST", json_data=dict(SLACK_JSON), timeout=10
    )


def _tagged() -> Any:
    from prefect.events.schemas.events import ResourceSpecification

    return ResourceSpecification(
        {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
    )


def automations(block_id: Any) -> list[Any]:
    """The alert automations (``AutomationCore``, in :data:`AUTOMATIONS` order), posting through
    block ``block_id``."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    from flows.reconcile import DRIFT_EVENT, DRIFT_RESOURCE_PREFIX

    minutes = int(FRESHNESS_SLA.total_seconds() // 60)
    description = "Created by `searchflow deploy` (docs/api.md, alerts)."
    return [
        AutomationCore(
            name=GATE_AUTOMATION,
            description=description,
            trigger=EventTrigger(
                expect={f"{EVENT_PREFIX}.*.failed"},
                match=ResourceSpecification({"prefect.resource.id": f"{EVENT_PREFIX}.batch.*"}),
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(block_document_id=block_id, subject=GATE_SUBJECT, body=GATE_BODY)
            ],
        ),
        AutomationCore(
            name=RUN_AUTOMATION,
            description=description,
            trigger=EventTrigger(
                expect={
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Crashed",
                    "prefect.flow-run.TimedOut",
                },
                # A run failed by a gate has its own alert (above): one alert per held batch.
                match=ResourceSpecification(
                    {
                        "prefect.resource.id": "prefect.flow-run.*",
                        "prefect.state-message": "!*GateFailed*",
                    }
                ),
                match_related=_tagged(),
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(block_document_id=block_id, subject=RUN_SUBJECT, body=RUN_BODY)
            ],
        ),
        AutomationCore(
            name=FRESHNESS_AUTOMATION,
            description=description,
            trigger=EventTrigger(
                after={event_name("generation", "validated")},
                expect={event_name("ingestion", "validated")},
                match=ResourceSpecification({"prefect.resource.id": f"{EVENT_PREFIX}.batch.*"}),
                posture=Posture.Proactive,
                threshold=1,
                within=FRESHNESS_SLA,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject=FRESHNESS_SUBJECT.format(minutes=minutes),
                    body=FRESHNESS_BODY.format(minutes=minutes),
                )
            ],
        ),
        AutomationCore(
            name=DRIFT_AUTOMATION,
            description=description,
            trigger=EventTrigger(
                expect={DRIFT_EVENT},
                match=ResourceSpecification({"prefect.resource.id": f"{DRIFT_RESOURCE_PREFIX}.*"}),
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(block_document_id=block_id, subject=DRIFT_SUBJECT, body=DRIFT_BODY)
            ],
        ),
    ]


async def _upsert(client: Any, wanted: Any) -> str:
    """Create or update the automation named ``wanted.name``; exactly one remains."""
    existing = await client.read_automations_by_name(wanted.name)
    if not existing:
        return str(await client.create_automation(wanted))
    keep, *extra = existing
    await client.update_automation(keep.id, wanted)
    for automation in extra:
        await client.delete_automation(automation.id)
    return str(keep.id)


async def ensure_alerts(client: Any, webhook_url: str | None) -> dict[str, Any]:
    """The webhook block and the alert automations, idempotently; with no URL, none (and any
    left from an earlier deploy are removed, so unsetting the URL silences the alerts)."""
    if not webhook_url:
        for name in AUTOMATIONS:
            for automation in await client.read_automations_by_name(name):
                await client.delete_automation(automation.id)
        return {
            "created": False,
            "reason": "SEARCHFLOW_ALERT_WEBHOOK_URL is not set: no webhook block, no alerts",
            "automations": {},
        }
    block_id = await webhook_block(webhook_url).asave(BLOCK_NAME, overwrite=True, client=client)
    ids = {wanted.name: await _upsert(client, wanted) for wanted in automations(block_id)}
    return {"created": True, "block": BLOCK_NAME, "block_id": str(block_id), "automations": ids}
