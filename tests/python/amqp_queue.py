"""A plain AMQP client (pika) on a Framehouse event exchange, for the tests.

    amqp_queue.py bind URL EXCHANGE QUEUE   declare the durable topic exchange and a
                                            durable queue bound to it with '#'
    amqp_queue.py drain URL QUEUE           take every message waiting (acked), one JSON
                                            line each: message_id, routing_key, type, body
"""
import json
import sys

import pika


def main():
    cmd, url = sys.argv[1], sys.argv[2]
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if cmd == "bind":
        exchange, queue = sys.argv[3], sys.argv[4]
        ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
        ch.queue_declare(queue=queue, durable=True)
        ch.queue_bind(queue=queue, exchange=exchange, routing_key="#")
    elif cmd == "drain":
        queue = sys.argv[3]
        while True:
            method, props, body = ch.basic_get(queue=queue, auto_ack=False)
            if method is None:
                break
            print(json.dumps({
                "message_id": props.message_id,
                "routing_key": method.routing_key,
                "type": props.type,
                "content_type": props.content_type,
                "persistent": props.delivery_mode == 2,
                "body": json.loads(body),
            }))
            ch.basic_ack(method.delivery_tag)
    else:
        raise SystemExit(f"unknown command {cmd}")
    conn.close()


if __name__ == "__main__":
    main()
