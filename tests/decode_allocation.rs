//! Decoding untrusted bytes never allocates more than the bytes justify: a counting global
//! allocator records the largest single allocation while crafted batches are decoded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kraft::record::{BatchBuilder, BatchKind, ControlRecord, RecordBatch};
use kraft::types::{Epoch, Offset};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest single allocation made by `f`.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    f();
    LARGEST.load(Ordering::Relaxed)
}

fn reseal(bytes: &mut [u8]) {
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

const INPUT_BYTES: usize = 1 << 20;

#[test]
fn a_batch_claiming_many_records_or_headers_allocates_little() {
    // One record whose header count claims half a million headers, followed by garbage.
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(0), Epoch(0));
    b.append(0, None, Some(b"x"), &[]).unwrap();
    let mut bytes = b.build().unwrap().to_vec();
    bytes.truncate(61);
    let body: Vec<u8> = {
        let mut rec = vec![0u8, 0, 0, 1, 0]; // attributes, ts, offset, key null(-1=1), value len 0
        rec.extend_from_slice(&[0x80, 0xa0, 0x3d]); // headers count varint = 500_000 (zig-zag)
        rec.resize(INPUT_BYTES - 70, 0x01);
        let mut out = Vec::new();
        let len = rec.len() as i32;
        let mut z = ((len << 1) ^ (len >> 31)) as u32;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out.extend_from_slice(&rec);
        out
    };
    bytes.extend_from_slice(&body);
    let length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    let count = (body.len() / 7) as i32;
    bytes[57..61].copy_from_slice(&count.to_be_bytes());
    bytes[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    reseal(&mut bytes);
    let bytes = Bytes::from(bytes);
    let largest = largest_allocation(|| {
        let batch = RecordBatch::decode(bytes.clone()).unwrap();
        let _ = batch.decode_records();
    });
    assert!(
        largest <= INPUT_BYTES / 4,
        "largest allocation {largest} bytes for {INPUT_BYTES} bytes of input"
    );
}

#[test]
fn control_arrays_claiming_many_elements_allocate_little() {
    // A Voters value whose array claims as many voters as there are bytes left.
    let mut value = vec![0u8, 0];
    let claimed = (INPUT_BYTES / 2) as u64 + 1;
    let mut v = claimed;
    while v >= 0x80 {
        value.push((v as u8) | 0x80);
        v >>= 7;
    }
    value.push(v as u8);
    value.resize(INPUT_BYTES, 0);
    let largest = largest_allocation(|| {
        assert!(ControlRecord::decode(&[0, 0, 0, 6], &value).is_err());
    });
    assert!(largest <= 64 * 1024, "largest allocation {largest} bytes");
}
