//! Record batch v2: round trips, every decoding failure as a typed error, arbitrary bytes never
//! panic, and byte-for-byte agreement with kafka-python's independent implementation.

mod common;

use bytes::Bytes;
use common::run_python;
use kraft::record::{
    BatchBuilder, BatchHeader, BatchIter, BatchKind, ControlRecord, LeaderChangeMessage,
    RecordBatch, RecordError, RecordHeader, next_batch_size,
};
use kraft::types::{Epoch, Offset};
use proptest::prelude::*;
use serde_json::{Value, json};

fn data_batch(base: i64, epoch: i32, values: &[&[u8]]) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(epoch));
    for (i, v) in values.iter().enumerate() {
        b.append(1_700_000_000_000 + i as i64, None, Some(v), &[])
            .unwrap();
    }
    b.build().unwrap()
}

#[test]
fn builder_output_decodes_to_the_same_records() {
    let headers = vec![
        RecordHeader {
            key: "trace".into(),
            value: Some(Bytes::from_static(b"abc")),
        },
        RecordHeader {
            key: "none".into(),
            value: None,
        },
    ];
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(42), Epoch(7));
    b.append(1000, Some(b"k1"), Some(b"v1"), &headers).unwrap();
    b.append(990, None, None, &[]).unwrap();
    b.append(1005, Some(b""), Some(&[0u8; 300]), &[]).unwrap();
    let batch = RecordBatch::decode(b.build().unwrap()).unwrap();
    let h = batch.header();
    assert_eq!(
        (h.base_offset, h.partition_leader_epoch, h.magic),
        (42, 7, 2)
    );
    assert_eq!((h.last_offset_delta, h.records_count), (2, 3));
    assert_eq!((h.base_timestamp, h.max_timestamp), (1000, 1005));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert_eq!(h.attributes, 0);
    assert_eq!(batch.next_offset(), Offset(45));
    let records = batch.decode_records().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(records[0].headers, headers);
    assert_eq!(
        (records[1].timestamp_delta, records[1].offset_delta),
        (-10, 1)
    );
    assert_eq!(
        (records[1].key.clone(), records[1].value.clone()),
        (None, None)
    );
    assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
    assert_eq!(records[2].value.as_deref(), Some(&[0u8; 300][..]));
}

#[test]
fn header_layout_is_byte_exact() {
    let bytes = data_batch(0x0102030405060708, 0x0a0b0c0d, &[b"x"]);
    assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize,
        bytes.len() - 12
    );
    assert_eq!(&bytes[12..16], &[0x0a, 0x0b, 0x0c, 0x0d]);
    assert_eq!(bytes[16], 2);
    let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&bytes[21..]));
    // One record: body length 7 (zig-zag 0x0e), attributes 0, tsDelta 0, offsetDelta 0, key null (-1 = 0x01),
    // value length 1 (0x02), 'x', no headers.
    assert_eq!(&bytes[57..61], &[0, 0, 0, 1]);
    assert_eq!(&bytes[61..], &[0x0e, 0, 0, 0, 0x01, 0x02, b'x', 0]);
}

#[test]
fn control_batch_carries_control_records() {
    let leader_change = ControlRecord::LeaderChange(LeaderChangeMessage {
        version: 0,
        leader_id: 2,
        voters: vec![1, 2, 3],
        granting_voters: vec![2, 3],
    });
    let mut b = BatchBuilder::new(BatchKind::Control, Offset(10), Epoch(3));
    b.append_control(5, &leader_change).unwrap();
    assert_eq!(
        b.append(5, None, Some(b"x"), &[]),
        Err(RecordError::WrongRecordKind)
    );
    let batch = RecordBatch::decode(b.build().unwrap()).unwrap();
    assert!(batch.is_control());
    assert_eq!(batch.header().attributes, 0x20);
    let record = &batch.decode_records().unwrap()[0];
    let decoded =
        ControlRecord::decode(record.key.as_ref().unwrap(), record.value.as_ref().unwrap());
    assert_eq!(decoded.unwrap(), leader_change);
}

#[test]
fn builder_refuses_to_exceed_its_limit_and_to_build_empty() {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(0), Epoch(0)).with_size_limit(200);
    b.append(0, None, Some(&[1u8; 100]), &[]).unwrap();
    assert_eq!(
        b.append(0, None, Some(&[1u8; 100]), &[]),
        Err(RecordError::BatchTooLarge { limit: 200 })
    );
    assert_eq!(b.record_count(), 1);
    assert!(RecordBatch::decode(b.build().unwrap()).is_ok());
    let empty = BatchBuilder::new(BatchKind::Data, Offset(0), Epoch(0));
    assert_eq!(empty.build(), Err(RecordError::EmptyBatch));
}

fn reseal(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn each_corruption_is_a_typed_error() {
    let good = data_batch(0, 1, &[b"one", b"two"]).to_vec();
    let decode = |b: Vec<u8>| RecordBatch::decode(Bytes::from(b));

    assert!(matches!(
        decode(good[..30].to_vec()),
        Err(RecordError::Short { .. })
    ));
    assert!(matches!(
        decode(good[..good.len() - 1].to_vec()),
        Err(RecordError::Short { .. })
    ));

    let mut bad_len = good.clone();
    bad_len[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(decode(bad_len), Err(RecordError::BadLength { length: 10 }));
    let mut huge = good.clone();
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        decode(huge.clone()),
        Err(RecordError::BadLength { .. })
    ));
    assert!(matches!(
        next_batch_size(&huge),
        Err(RecordError::BadLength { .. })
    ));

    let mut magic = good.clone();
    magic[16] = 1;
    assert_eq!(decode(magic), Err(RecordError::BadMagic(1)));

    let mut flipped = good.clone();
    flipped[good.len() - 2] ^= 0x40;
    assert!(matches!(
        decode(flipped),
        Err(RecordError::CrcMismatch { .. })
    ));

    let mut count = good.clone();
    count[57..61].copy_from_slice(&1000i32.to_be_bytes());
    count[23..27].copy_from_slice(&999i32.to_be_bytes());
    reseal(&mut count);
    assert!(matches!(
        decode(count),
        Err(RecordError::BadRecordCount { count: 1000, .. })
    ));

    let mut gzip = good.clone();
    gzip[22] |= 1;
    reseal(&mut gzip);
    // The records are not gzip data: decompressing them fails (with the codec named).
    let batch = decode(gzip).unwrap();
    assert!(matches!(
        batch.decode_records(),
        Err(RecordError::Decompress { codec: "gzip", .. })
    ));
    let mut codec7 = good.clone();
    codec7[22] |= 7;
    reseal(&mut codec7);
    assert_eq!(decode(codec7), Err(RecordError::UnsupportedCompression(7)));

    // Claims one record, holds two: the second is left over.
    let mut fewer = good.clone();
    fewer[57..61].copy_from_slice(&1i32.to_be_bytes());
    reseal(&mut fewer);
    assert!(matches!(
        decode(fewer).unwrap().decode_records(),
        Err(RecordError::TrailingBytes(_))
    ));

    // A record whose length varint runs past the batch.
    let mut overrun = good.clone();
    overrun[61] = 0x7e;
    reseal(&mut overrun);
    let err = decode(overrun).unwrap().decode_records().unwrap_err();
    assert!(
        matches!(err, RecordError::BadRecord { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn batch_iter_stops_before_a_partial_trailing_batch() {
    let mut buf = Vec::new();
    let a = data_batch(0, 1, &[b"a"]);
    let b = data_batch(1, 1, &[b"bb", b"cc"]);
    buf.extend_from_slice(&a);
    buf.extend_from_slice(&b);
    buf.extend_from_slice(&data_batch(3, 2, &[b"d"])[..20]);
    let mut iter = BatchIter::new(Bytes::from(buf));
    assert_eq!(iter.next().unwrap().unwrap().as_bytes(), &a);
    assert_eq!(iter.next().unwrap().unwrap().as_bytes(), &b);
    assert!(iter.next().is_none());
    assert_eq!(iter.trailing_bytes(), 20);
}

#[test]
fn batch_iter_reports_corruption_once_and_stops() {
    let mut buf = data_batch(0, 1, &[b"a"]).to_vec();
    let second_start = buf.len();
    buf.extend_from_slice(&data_batch(1, 1, &[b"b"]));
    buf.extend_from_slice(&data_batch(2, 1, &[b"c"]));
    buf[second_start + 30] ^= 1;
    let results: Vec<_> = BatchIter::new(Bytes::from(buf)).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(RecordError::CrcMismatch { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let buf = Bytes::from(bytes);
        let _ = BatchHeader::parse(&buf);
        if let Ok(batch) = RecordBatch::decode(buf.clone()) {
            let _ = batch.decode_records();
        }
        for batch in BatchIter::new(buf).flatten() {
            let _ = batch.decode_records();
        }
    }

    #[test]
    fn any_single_bit_flip_in_the_crc_range_is_detected(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let mut bytes = data_batch(5, 2, &refs).to_vec();
        let pos = 17 + flip.index(bytes.len() - 17);
        bytes[pos] ^= 1 << bit;
        prop_assert!(RecordBatch::decode(Bytes::from(bytes)).is_err());
    }

    #[test]
    fn valid_batches_with_crafted_record_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        count in -2i32..60,
    ) {
        let mut bytes = data_batch(0, 0, &[b"x"]).to_vec();
        bytes.truncate(61);
        bytes.extend_from_slice(&body);
        let length = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        bytes[23..27].copy_from_slice(&count.max(1).saturating_sub(1).to_be_bytes());
        reseal(&mut bytes);
        if let Ok(batch) = RecordBatch::decode(Bytes::from(bytes)) {
            let _ = batch.decode_records();
        }
    }
}

// ---- kafka-python as an independent implementation -------------------------------------------

fn describe(batch: &RecordBatch) -> Value {
    let h = batch.header();
    let records: Vec<Value> = batch
        .decode_records()
        .unwrap()
        .iter()
        .map(|r| {
            let hexa = |b: &Option<Bytes>| b.as_ref().map(|b| hex(b));
            let headers: Vec<Value> = r
                .headers
                .iter()
                .map(|h| json!([h.key, hexa(&h.value)]))
                .collect();
            let mut entry = json!({
                "offset": h.base_offset + i64::from(r.offset_delta),
                "timestamp": h.base_timestamp + r.timestamp_delta,
                "key": hexa(&r.key),
                "value": hexa(&r.value),
                "headers": headers,
            });
            if batch.is_control() {
                let key = r.key.as_ref().unwrap();
                let control = ControlRecord::decode(key, r.value.as_ref().unwrap()).unwrap();
                entry["control"] = json!([0, control.record_type().id()]);
            }
            entry
        })
        .collect();
    json!({
        "base_offset": h.base_offset,
        "leader_epoch": h.partition_leader_epoch,
        "last_offset_delta": h.last_offset_delta,
        "records_count": h.records_count,
        "crc": h.crc,
        "is_control": batch.is_control(),
        "max_timestamp": h.max_timestamp,
        "producer_id": h.producer_id,
        "records": records,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn kafka_python_reads_batches_kraft_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    let mut expected = Vec::new();
    let headers = [RecordHeader {
        key: "h1".into(),
        value: Some(Bytes::from_static(b"\x00\xff")),
    }];
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(0), Epoch(1));
    for i in 0..200u32 {
        let value = i.to_be_bytes().repeat(i as usize % 17);
        let key = (i % 3 == 0).then(|| i.to_string().into_bytes());
        b.append(
            1_700_000_000_000 + i64::from(i),
            key.as_deref(),
            Some(&value),
            &headers[..(i % 2) as usize],
        )
        .unwrap();
    }
    let mut control = BatchBuilder::new(BatchKind::Control, Offset(203), Epoch(3));
    let leader_change = ControlRecord::LeaderChange(LeaderChangeMessage {
        version: 0,
        leader_id: 1,
        voters: vec![1, 2, 3],
        granting_voters: vec![1, 2],
    });
    control
        .append_control(1_700_000_001_000, &leader_change)
        .unwrap();
    let batches = vec![
        b.build().unwrap(),
        data_batch(200, 2, &[b"", &[7u8; 1000]]),
        data_batch(202, i32::MAX, &[b"max epoch"]),
        control.build().unwrap(),
    ];
    for bytes in batches {
        expected.push(describe(&RecordBatch::decode(bytes.clone()).unwrap()));
        file.extend_from_slice(&bytes);
    }
    let path = dir.path().join("kraft.bin");
    std::fs::write(&path, &file).unwrap();
    let read = run_python("read", &path);
    assert_eq!(read.len(), expected.len());
    for (i, (theirs, ours)) in read.iter().zip(&expected).enumerate() {
        for (field, value) in ours.as_object().unwrap() {
            assert_eq!(&theirs[field], value, "batch {i}, field {field}");
        }
        assert_eq!(theirs, ours, "batch {i}");
    }
}

#[test]
fn kraft_reads_batches_kafka_python_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("python.bin");
    let expected = run_python("write", &path);
    assert_eq!(expected.len(), 3);
    let bytes = Bytes::from(std::fs::read(&path).unwrap());
    let decoded: Vec<Value> = BatchIter::new(bytes)
        .map(|b| describe(&b.unwrap()))
        .collect();
    assert_eq!(decoded, expected);
}
