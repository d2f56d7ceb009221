//! Decompressing the records section of a batch Kafka clients compressed: gzip, snappy (raw, or
//! the xerial framing Java's client writes), lz4 (the frame format) and zstd.
//!
//! Owns the codecs and the cap on what one batch may expand to; a batch that would exceed it is
//! refused, never partly kept. It never compresses: kraft's leader appends batches as sent.

use std::io::Read;

use bytes::Bytes;

use super::MAX_BATCH_BYTES;
use super::batch::Compression;
use super::error::RecordError;

/// Most bytes one batch's records may decompress to: bounds what a small hostile batch (a
/// "zip bomb") can make a node allocate.
pub const MAX_DECOMPRESSED_BYTES: usize = 4 * MAX_BATCH_BYTES;

/// The header Java's snappy stream starts with: magic, then two 4-byte version fields.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

/// The records section of a batch compressed with `codec`, decompressed.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Bytes, RecordError> {
    let fail = |reason: String| RecordError::Decompress {
        codec: codec.name(),
        reason,
    };
    let out = match codec {
        Compression::None => return Ok(Bytes::copy_from_slice(data)),
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data)),
        Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(data)),
        Compression::Zstd => ruzstd::decoding::StreamingDecoder::new(data)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(read_capped),
        Compression::Snappy => return snappy(data).map_err(fail),
    };
    out.map_err(|e| fail(e.to_string()))
}

/// Reads a decoder to its end, refusing more than the cap.
fn read_capped(decoder: impl Read) -> std::io::Result<Bytes> {
    let mut out = Vec::new();
    decoder
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(std::io::Error::other(format!(
            "expands past {MAX_DECOMPRESSED_BYTES} bytes"
        )));
    }
    Ok(out.into())
}

fn snappy(data: &[u8]) -> Result<Bytes, String> {
    let Some(mut chunks) = data.strip_prefix(&XERIAL_MAGIC[..]) else {
        return snappy_block(data, 0).map(Bytes::from);
    };
    if chunks.len() < XERIAL_HEADER_BYTES - XERIAL_MAGIC.len() {
        return Err("xerial header cut short".into());
    }
    chunks = &chunks[XERIAL_HEADER_BYTES - XERIAL_MAGIC.len()..];
    let mut out = Vec::new();
    while !chunks.is_empty() {
        let (length, rest) = chunks
            .split_first_chunk::<4>()
            .ok_or("xerial chunk length cut short")?;
        let length = u32::from_be_bytes(*length) as usize;
        let block = rest.get(..length).ok_or("xerial chunk cut short")?;
        out.extend_from_slice(&snappy_block(block, out.len())?);
        chunks = &rest[length..];
    }
    Ok(out.into())
}

/// One raw snappy block, whose declared length is checked against what the cap leaves.
fn snappy_block(block: &[u8], already: usize) -> Result<Vec<u8>, String> {
    let length = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    if already + length > MAX_DECOMPRESSED_BYTES {
        return Err(format!("expands past {MAX_DECOMPRESSED_BYTES} bytes"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn snappy_raw(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// Java's framing: the xerial header, then length-prefixed raw blocks.
    fn snappy_xerial(data: &[u8]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        for chunk in data.chunks(32 * 1024) {
            let block = snappy_raw(chunk);
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        let cases = [
            (Compression::Gzip, gzip(&data)),
            (Compression::Lz4, lz4(&data)),
            (Compression::Zstd, zstd(&data)),
            (Compression::Snappy, snappy_raw(&data)),
            (Compression::Snappy, snappy_xerial(&data)),
        ];
        for (codec, compressed) in cases {
            assert!(
                compressed.len() < data.len(),
                "{codec:?} compressed nothing"
            );
            assert_eq!(decompress(codec, &compressed).unwrap(), data, "{codec:?}");
        }
    }

    #[test]
    fn a_batch_expanding_past_the_cap_is_refused() {
        let bomb = vec![0u8; MAX_DECOMPRESSED_BYTES + 1];
        for (codec, compressed) in [
            (Compression::Gzip, gzip(&bomb)),
            (Compression::Lz4, lz4(&bomb)),
            (Compression::Zstd, zstd(&bomb)),
            (Compression::Snappy, snappy_xerial(&bomb)),
        ] {
            assert!(compressed.len() < MAX_BATCH_BYTES, "{codec:?}");
            match decompress(codec, &compressed) {
                Err(RecordError::Decompress { reason, .. }) => {
                    assert!(reason.contains("expands past"), "{codec:?}: {reason}")
                }
                other => panic!("{codec:?}: {:?}", other.map(|b| b.len())),
            }
        }
    }

    #[test]
    fn a_cut_stream_is_an_error_or_a_prefix_never_a_panic() {
        let data = sample();
        for (codec, compressed) in [
            (Compression::Gzip, gzip(&data)),
            (Compression::Lz4, lz4(&data)),
            (Compression::Zstd, zstd(&data)),
            (Compression::Snappy, snappy_xerial(&data)),
        ] {
            for cut in [1, 7, 16, compressed.len() / 2, compressed.len() - 1] {
                // A cut between lz4 blocks or xerial chunks ends the stream quietly: what comes
                // back is then a prefix of the data, and records cut short fail to decode, so
                // such a batch is refused all the same.
                if let Ok(out) = decompress(codec, &compressed[..cut]) {
                    assert!(data.starts_with(&out), "{codec:?} cut at {cut}");
                }
            }
        }
    }
}
