"""Sends events to Affinity with Segment's own Python client (segment-analytics-python).

Usage: send_with_segment.py HOST WRITE_KEY
Prints one JSON object: what was sent and what the client reported.
"""
import json
import sys

import segment.analytics as analytics
from segment.analytics import Client

host, write_key = sys.argv[1], sys.argv[2]
errors = []


def on_error(error, items):
    errors.append(f"{error!r} ({len(items)} items)")


# Two clients: one plain, one gzip, as Segment users configure them.
plain = Client(write_key, host=host, on_error=on_error, sync_mode=False, max_retries=2)
zipped = Client(write_key, host=host, on_error=on_error, gzip=True, sync_mode=True)

plain.identify(anonymous_id="py-anon-1", traits={"source": "python"}, message_id="py-m1")
plain.track(anonymous_id="py-anon-1", event="Product Viewed",
            properties={"product_id": "sku-7", "brand": "Acme", "price": 12.5}, message_id="py-m2")
plain.page(anonymous_id="py-anon-1", category="Shop", name="Product", message_id="py-m3")
plain.alias(previous_id="py-anon-1", user_id="py-user-1", message_id="py-m4")
plain.identify(user_id="py-user-1", traits={"email": "py@example.com", "plan": "pro"}, message_id="py-m5")
plain.track(user_id="py-user-1", event="Order Completed",
            properties={"order_id": "o-1", "products": [{"product_id": "sku-7", "brand": "Acme"},
                                                         {"product_id": "sku-9", "brand": "Globex"}]},
            message_id="py-m6")
plain.group(user_id="py-user-1", group_id="acme-inc", traits={"name": "Acme Inc"}, message_id="py-m7")
plain.screen(user_id="py-user-1", name="Cart", message_id="py-m8")
# Many small events, flushed in batches by the client's consumer thread.
for i in range(300):
    plain.track(user_id=f"py-bulk-{i % 10}", event="Bulk Event", properties={"i": i}, message_id=f"py-bulk-{i}")
plain.flush()
plain.shutdown()

zipped.track(user_id="py-user-1", event="Zipped Event", properties={"via": "gzip"}, message_id="py-z1")
# A sync-mode client has sent everything on return (its shutdown() fails in 2.4.0: no consumers).

print(json.dumps({"sent": 8 + 300 + 1, "errors": errors}))
