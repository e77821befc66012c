"""The generator's platform/device pairs and the event contract's vocabulary agree.

``searchflow.events.VOCABULARY`` is what the generation gate accepts; ``generator.vocab`` is what
the generator draws from. A value added to one and not the other would either never be generated
or hold every batch that has it.
"""

from __future__ import annotations

from generator import vocab
from searchflow.events import VOCABULARY


def test_every_generated_platform_and_device_is_in_the_contract_and_back():
    allowed = VOCABULARY["search"]
    platforms = {p for p, _ in vocab.PLATFORM_DEVICES}
    devices = {d for _, d in vocab.PLATFORM_DEVICES}
    assert platforms == set(allowed["platform"])
    assert devices == set(allowed["device_type"])
    assert len(vocab.PLATFORM_DEVICE_WEIGHTS) == len(vocab.PLATFORM_DEVICES)
