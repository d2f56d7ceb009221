"""kafka-python against a kraft quorum, for tests/kafka_clients.rs.

  produce BOOTSTRAP COUNT [PREFIX [IDEMPOTENT [RATE]]]
                            kafka-python producer (acks=all, idempotent unless IDEMPOTENT=0,
                            at most RATE records/s if given), values
                            "PREFIX-0".."PREFIX-{COUNT-1}" (PREFIX "v"); prints
                            {"acked": n} every 100 acknowledgements, then
                            {"done": true, "acked": n, "errors": [...]}
  consume BOOTSTRAP [RACK]  kafka-python consumer (client_rack RACK) from the log's start to its
                            end offset: {"offset": o, "value": v} per record, then {"end": end}
  ck-produce BOOTSTRAP COUNT PREFIX [IDEMPOTENT [RATE]]
                            the same with confluent-kafka (librdkafka), acks=all
  ck-consume BOOTSTRAP [RACK]         the same with confluent-kafka (client.rack RACK)
  describe BOOTSTRAP        prints the admin client's describe_cluster() and
                            describe_metadata_quorum() results
"""
import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

TOPIC = "__raft_performance_test"


def say(obj):
    print(json.dumps(obj), flush=True)


def produce(bootstrap, count, prefix="v", idempotent=True, rate=0):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=idempotent,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=5,
        linger_ms=5,
        request_timeout_ms=3000,
        delivery_timeout_ms=120000,
        retry_backoff_ms=100,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=500,
        metadata_max_age_ms=1000,
    )
    acked = 0
    errors = []

    def ok(_):
        nonlocal acked
        acked += 1
        if acked % 100 == 0:
            say({"acked": acked})

    def failed(e):
        errors.append(repr(e))

    started = time.time()
    for i in range(count):
        if rate and i % 10 == 0:
            ahead = i / rate - (time.time() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.send(TOPIC, value=b"%s-%d" % (prefix.encode(), i), partition=0).add_callback(ok).add_errback(failed)
    producer.flush(timeout=120)
    producer.close(timeout=10)
    say({"done": True, "acked": acked, "errors": errors})


def consume(bootstrap, rack=None):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        request_timeout_ms=5000,
        client_rack=rack or "",
    )
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    consumer.seek_to_beginning(tp)
    deadline = time.time() + 60
    while consumer.position(tp) < end and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                say({"offset": r.offset, "value": r.value.decode()})
    say({"end": end})


def ck_produce(bootstrap, count, prefix, idempotent=False, rate=0):
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": idempotent,
        "message.timeout.ms": 120000,
        "socket.timeout.ms": 3000,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    acked = 0
    errors = []

    def report(err, _msg):
        nonlocal acked
        if err is None:
            acked += 1
            if acked % 100 == 0:
                say({"acked": acked})
        else:
            errors.append(str(err))

    started = time.time()
    for i in range(count):
        if rate and i % 10 == 0:
            ahead = i / rate - (time.time() - started)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(TOPIC, value=b"%s-%d" % (prefix.encode(), i), partition=0,
                                 on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    say({"done": True, "acked": acked, "errors": errors})


def ck_consume(bootstrap, rack=None):
    from confluent_kafka import Consumer, TopicPartition as CkPartition

    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "kraft-test",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if rack:
        config["client.rack"] = rack
    consumer = Consumer(config)
    low, end = consumer.get_watermark_offsets(CkPartition(TOPIC, 0), timeout=10)
    consumer.assign([CkPartition(TOPIC, 0, low)])
    deadline = time.time() + 60
    position = low
    while position < end and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        position = msg.offset() + 1
        say({"offset": msg.offset(), "value": msg.value().decode()})
    consumer.close()
    say({"end": end})


def describe(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000)
    say({"cluster": admin.describe_cluster()})
    say({"quorum": admin.describe_metadata_quorum()})


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1], sys.argv[2]
    if mode == "produce":
        prefix = sys.argv[4] if len(sys.argv) > 4 else "v"
        idempotent = len(sys.argv) <= 5 or sys.argv[5] != "0"
        rate = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        produce(bootstrap, int(sys.argv[3]), prefix, idempotent, rate)
    elif mode == "consume":
        consume(bootstrap, sys.argv[3] if len(sys.argv) > 3 else None)
    elif mode == "ck-produce":
        idempotent = len(sys.argv) > 5 and sys.argv[5] == "1"
        rate = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        ck_produce(bootstrap, int(sys.argv[3]), sys.argv[4], idempotent, rate)
    elif mode == "ck-consume":
        ck_consume(bootstrap, sys.argv[3] if len(sys.argv) > 3 else None)
    elif mode == "describe":
        describe(bootstrap)
    else:
        sys.exit("unknown mode " + mode)
