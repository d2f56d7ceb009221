"""kafka-python against a kraft quorum, for tests/kafka_clients.rs.

  produce BOOTSTRAP COUNT   idempotent producer (acks=all), values "v-0".."v-{COUNT-1}";
                            prints {"acked": n} every 100 acknowledgements, then
                            {"done": true, "acked": n, "errors": [...]}
  consume BOOTSTRAP         reads the log from its start to its end offset and prints
                            {"offset": o, "value": v} per record, then {"end": end}
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


def produce(bootstrap, count):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
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

    for i in range(count):
        producer.send(TOPIC, value=b"v-%d" % i, partition=0).add_callback(ok).add_errback(failed)
    producer.flush(timeout=120)
    producer.close(timeout=10)
    say({"done": True, "acked": acked, "errors": errors})


def consume(bootstrap):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        request_timeout_ms=5000,
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


def describe(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000)
    say({"cluster": admin.describe_cluster()})
    say({"quorum": admin.describe_metadata_quorum()})


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1], sys.argv[2]
    if mode == "produce":
        produce(bootstrap, int(sys.argv[3]))
    elif mode == "consume":
        consume(bootstrap)
    elif mode == "describe":
        describe(bootstrap)
    else:
        sys.exit("unknown mode " + mode)
