"""RabbitMQ as a job transport, for comparison with the PostgreSQL queue (bench/wakeup.sh):
a durable queue, persistent messages published with confirms on one connection, consumed
with manual acks and prefetch on another (as two nodes would). Latency: publish ->
delivery, one message at a time, p50/p99. Throughput: BURST messages published one after
another (each confirmed), all delivered and acked; messages/s from the first publish to
the last delivery. One process, one clock.

    amqp_wakeup.py AMQP_URL [MESSAGES] [BURST]
"""
import statistics
import sys
import threading
import time

import pika

url = sys.argv[1]
messages = int(sys.argv[2]) if len(sys.argv) > 2 else 100
burst = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
QUEUE = "wakeup-bench"

delivered = []
cond = threading.Condition()


def consume():
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue=QUEUE, durable=True)
    ch.basic_qos(prefetch_count=16)

    def on_message(ch, method, _props, _body):
        now = time.perf_counter()
        ch.basic_ack(method.delivery_tag)
        with cond:
            delivered.append(now)
            cond.notify_all()

    ch.basic_consume(queue=QUEUE, on_message_callback=on_message)
    ch.start_consuming()


pub = pika.BlockingConnection(pika.URLParameters(url))
ch = pub.channel()
ch.queue_declare(queue=QUEUE, durable=True)
ch.queue_purge(QUEUE)
ch.confirm_delivery()
threading.Thread(target=consume, daemon=True).start()
time.sleep(0.5)
props = pika.BasicProperties(delivery_mode=2)


def wait_for(n):
    with cond:
        if not cond.wait_for(lambda: len(delivered) >= n, timeout=120):
            raise SystemExit("messages not delivered")


latencies = []
for i in range(messages):
    t0 = time.perf_counter()
    ch.basic_publish(exchange="", routing_key=QUEUE, body=b"{}", properties=props)
    wait_for(i + 1)
    latencies.append((delivered[i] - t0) * 1000)
latencies.sort()
start = time.perf_counter()
for _ in range(burst):
    ch.basic_publish(exchange="", routing_key=QUEUE, body=b"{}", properties=props)
wait_for(messages + burst)
secs = delivered[-1] - start
p99 = latencies[round((len(latencies) - 1) * 0.99)]
print(
    f"  amqp: {messages} jobs, publish -> delivery: p50 {statistics.median(latencies):.2f} ms, "
    f"p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms; {burst} in a burst: {burst / secs:.0f} jobs/s"
)
