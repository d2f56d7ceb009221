"""Independent check of kraft's record batch v2 against kafka-python's implementation.

  read FILE   decode the concatenated batches in FILE with kafka-python, verify each CRC,
              print one JSON object per batch (header fields and records) on stdout
  write FILE  build batches with kafka-python's DefaultRecordBatchBuilder, write them to FILE,
              print the same JSON description of what was written
"""
import json
import sys

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords


def hexa(b):
    return None if b is None else bytes(b).hex()


def describe(batch):
    records = []
    for r in batch:
        headers = [[k, hexa(v)] for k, v in getattr(r, "headers", [])]
        entry = {
            "offset": r.offset,
            "timestamp": r.timestamp,
            "key": hexa(getattr(r, "key", None)),
            "value": hexa(getattr(r, "value", None)),
            "headers": headers,
        }
        if batch.is_control_batch:
            # kafka-python parses the control key itself: version and type.
            entry["control"] = [r.version, r.type]
        records.append(entry)
    return {
        "base_offset": batch.base_offset,
        "leader_epoch": batch.leader_epoch,
        "last_offset_delta": batch.last_offset_delta,
        "records_count": batch.records_count,
        "crc": batch.crc,
        "is_control": batch.is_control_batch,
        "max_timestamp": batch.max_timestamp,
        "producer_id": batch.producer_id,
        "records": records,
    }


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    memory = MemoryRecords(data)
    while True:
        batch = memory.next_batch()
        if batch is None:
            break
        if not batch.validate_crc():
            raise SystemExit("crc mismatch in batch at offset %d" % batch.base_offset)
        print(json.dumps(describe(batch)))


def write(path):
    out = bytearray()
    specs = [
        # (base offset, records: (timestamp, key, value, headers))
        (0, [(1700000000000, None, b"hello", [])]),
        (1, [(1700000000001 + i, b"k%d" % i, bytes(range(i % 256)) * 3, [("h", b"v")]) for i in range(50)]),
        (51, [(1700000000100, b"", None, [("a", None), ("b", b"")])]),
    ]
    for base, records in specs:
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=False,
            producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
        for delta, (ts, key, value, headers) in enumerate(records):
            builder.append(delta, timestamp=ts, key=key, value=value, headers=headers)
        batch = bytearray(builder.build())
        batch[0:8] = base.to_bytes(8, "big")  # not covered by the CRC
        out += batch
    with open(path, "wb") as f:
        f.write(out)
    memory = MemoryRecords(bytes(out))
    while True:
        batch = memory.next_batch()
        if batch is None:
            break
        print(json.dumps(describe(batch)))


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
