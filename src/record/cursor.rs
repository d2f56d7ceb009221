//! A bounds-checked reader over untrusted bytes, and the varint encodings record batches use.
//!
//! Record fields use zig-zag signed varints (protobuf style); the flexible message encoding of
//! control record values uses unsigned varints. Both live here so they are never mixed up. Every
//! read returns `None` instead of panicking when the bytes run out or a varint is too long.

use bytes::BufMut;

/// A position in a byte slice that only moves forward.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.array::<1>().map(i8::from_be_bytes)
    }

    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.array::<2>().map(i16::from_be_bytes)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.array::<4>().map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.array::<8>().map(i64::from_be_bytes)
    }

    pub(crate) fn bytes16(&mut self) -> Option<[u8; 16]> {
        self.array::<16>()
    }

    /// An unsigned LEB128 varint of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: usize) -> Option<u64> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Kafka's unsigned varint (flexible versions: compact lengths, tags).
    pub(crate) fn uvarint(&mut self) -> Option<u32> {
        u32::try_from(self.unsigned(5)?).ok()
    }

    /// Kafka's zig-zag varint (record fields).
    pub(crate) fn varint(&mut self) -> Option<i32> {
        let raw = u32::try_from(self.unsigned(5)?).ok()?;
        Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Kafka's zig-zag varlong (record timestamp delta).
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let raw = self.unsigned(10)?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

pub(crate) fn put_uvarint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

pub(crate) fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_uvarint(buf, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

pub(crate) fn put_varlong(buf: &mut impl BufMut, value: i64) {
    put_uvarint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

pub(crate) fn uvarint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

pub(crate) fn varint_len(value: i32) -> usize {
    uvarint_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

pub(crate) fn varlong_len(value: i64) -> usize {
    uvarint_len(((value << 1) ^ (value >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            assert_eq!(Cursor::new(&buf).varint(), Some(v));
        }
        for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            assert_eq!(Cursor::new(&buf).varlong(), Some(v));
        }
    }

    #[test]
    fn kafka_varint_examples() {
        // ByteUtilsTest: -1 encodes as 0x01, 1 as 0x02, 300 (zig-zag 600) as 0xd8 0x04.
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        put_varint(&mut buf, 1);
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn overlong_and_truncated_varints_are_rejected() {
        assert_eq!(Cursor::new(&[0xff; 6]).varint(), None);
        assert_eq!(Cursor::new(&[0xff; 11]).varlong(), None);
        assert_eq!(Cursor::new(&[0x80]).varint(), None);
        assert_eq!(Cursor::new(&[]).i32(), None);
    }
}
