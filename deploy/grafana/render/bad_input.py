"""A faulty producer beside the chaos run: records on the events topic that
are not task events, so the dead-letter panel has something real to show
(the chaos generator writes only valid events). The job decodes each one,
dead-letters it and counts it by kind; nothing here touches the metrics.

    python bad_input.py BROKERS SECONDS

Every 10 s for SECONDS it sends one record of each kind below; in the
middle third, five of each (a bad deploy of some upstream producer).
Needs confluent-kafka (tests/interop/python-env.sh provides it).
"""

import struct
import sys
import time

from confluent_kafka import Producer

TOPIC = "agent.task.events"
RECORDS = [
    # Not JSON at all: a truncated write.
    b'{"event_id": "e-1", "agent_id": "support-agent-3", "task_',
    # JSON, but not a task event: required fields missing.
    b'{"agent_id": "support-agent-3", "status": "ok"}',
    # Confluent framing with a schema id nobody registered.
    b"\x00" + struct.pack(">I", 4242) + b"\x02\x04ab",
]


def main():
    brokers, seconds = sys.argv[1], float(sys.argv[2])
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        burst = 5 if seconds / 3 <= elapsed < 2 * seconds / 3 else 1
        for value in RECORDS * burst:
            p.produce(TOPIC, key=b"support-agent-3", value=value)
        p.flush(10)
        time.sleep(10)
    left = p.flush(10)
    if left:
        sys.exit(f"bad_input: {left} records not delivered")


if __name__ == "__main__":
    main()
