//! The file format: a fixed 32-byte header, then the postcard payload.
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0 | 8 | magic | `b"MTPICKLE"` |
//! | 8 | 2 | format version, little-endian | [`FORMAT_VERSION`] (3) |
//! | 10 | 2 | reserved | 0 |
//! | 12 | 8 | fingerprint of the registry, little-endian | [`Registry::fingerprint`](super::Registry::fingerprint) |
//! | 20 | 8 | payload length in bytes, little-endian | n |
//! | 28 | 4 | CRC-32 (IEEE) of bytes 0..28 and of the payload, little-endian | |
//! | 32 | n | payload: the world, [postcard](https://postcard.jamesmunns.com/wire-format) encoded | |
//!
//! [`open`] checks, in this order: the length of the header, the magic, the version, the
//! reserved field, the payload length against the bytes there are (so a hostile length
//! allocates nothing), the checksum, then the fingerprint; each failure is its own
//! [`PickleError`]. The payload's own lengths are bounded by the input too: postcard reads
//! a byte string only if its bytes are there, and serde preallocates a sequence with a
//! cautious bound (at most 1 MiB), whatever its length prefix says.

use super::PickleError;

/// The magic at offset 0.
pub const MAGIC: [u8; 8] = *b"MTPICKLE";
/// The format version this build writes and reads (and the only one it reads). Version 2
/// added the values of the blocked senders to each channel
/// ([`ChannelImage::values`](super::ChannelImage::values)), which a lazy restore needs before
/// the senders run; version 3 added buffered channels: each channel's kind with its capacity
/// ([`ChannelImage::kind`](super::ChannelImage::kind)) and the values in its buffer
/// ([`ChannelImage::buffered`](super::ChannelImage::buffered)).
pub const FORMAT_VERSION: u16 = 3;
/// The most values the buffers of one world's channels may hold together (the sum of their
/// capacities): [`World::buffered_channel`](super::World::buffered_channel) refuses more, and
/// so does a restore, which allocates every buffer whole (a hostile pickle's capacities
/// would otherwise allocate without bound).
pub const MAX_BUFFERED: u64 = 1 << 20;
/// The header's length: the payload starts here.
pub const HEADER_LEN: usize = 32;

/// Wraps `payload` in the header for a registry of fingerprint `fingerprint`.
///
/// ```
/// use microthread::pickle::format;
/// let bytes = format::seal(7, b"hello");
/// assert_eq!(bytes.len(), format::HEADER_LEN + 5);
/// assert_eq!(format::open(&bytes, 7).unwrap(), b"hello");
/// ```
pub fn seal(fingerprint: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Sealer::with_capacity(payload.len());
    out.0.extend_from_slice(payload);
    out.seal(fingerprint)
}

/// A pickle being written: room for the header, then the payload as postcard writes it
/// (a postcard flavor), sealed in place once the payload is complete, so the payload is
/// never copied.
pub(super) struct Sealer(Vec<u8>);

impl Sealer {
    /// An empty payload, with room for `payload` bytes of it.
    pub(super) fn with_capacity(payload: usize) -> Sealer {
        let mut out = Vec::with_capacity(HEADER_LEN + payload);
        out.resize(HEADER_LEN, 0);
        Sealer(out)
    }

    /// The header for a registry of fingerprint `fingerprint`, written in front of the
    /// payload.
    pub(super) fn seal(self, fingerprint: u64) -> Vec<u8> {
        let mut out = self.0;
        let len = (out.len() - HEADER_LEN) as u64;
        let (head, payload) = out.split_at_mut(HEADER_LEN);
        head[..8].copy_from_slice(&MAGIC);
        head[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        head[10..12].copy_from_slice(&0u16.to_le_bytes());
        head[12..20].copy_from_slice(&fingerprint.to_le_bytes());
        head[20..28].copy_from_slice(&len.to_le_bytes());
        let crc = checksum(head, payload);
        head[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

impl postcard::ser_flavors::Flavor for Sealer {
    type Output = Sealer;

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Sealer> {
        Ok(self)
    }
}

fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&head[..28]);
    h.update(payload);
    h.finalize()
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Checks the header of `bytes` against a registry of fingerprint `fingerprint` and returns
/// the payload.
///
/// # Errors
/// [`PickleError::Truncated`], [`PickleError::BadMagic`],
/// [`PickleError::UnsupportedVersion`], [`PickleError::BadHeader`],
/// [`PickleError::TrailingBytes`], [`PickleError::Checksum`],
/// [`PickleError::Fingerprint`], in that order of checking.
///
/// ```
/// use microthread::pickle::{format, PickleError};
/// let mut bytes = format::seal(7, b"hello");
/// assert!(matches!(format::open(&bytes, 8), Err(PickleError::Fingerprint { found: 7, expected: 8 })));
/// *bytes.last_mut().unwrap() ^= 1;
/// assert!(matches!(format::open(&bytes, 7), Err(PickleError::Checksum { .. })));
/// assert!(matches!(format::open(&bytes[..10], 7), Err(PickleError::Truncated { .. })));
/// ```
pub fn open(bytes: &[u8], fingerprint: u64) -> Result<&[u8], PickleError> {
    if bytes.len() < HEADER_LEN {
        // Say what is wrong first if the part there is already shows it.
        if bytes.len() >= 8 && bytes[..8] != MAGIC {
            return Err(PickleError::BadMagic);
        }
        return Err(PickleError::Truncated {
            needed: HEADER_LEN as u64,
            available: bytes.len() as u64,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(PickleError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(PickleError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes[10] != 0 || bytes[11] != 0 {
        return Err(PickleError::BadHeader);
    }
    let found = le_u64(&bytes[12..20]);
    let len = le_u64(&bytes[20..28]);
    let available = (bytes.len() - HEADER_LEN) as u64;
    if len > available {
        return Err(PickleError::Truncated {
            needed: (HEADER_LEN as u64).saturating_add(len),
            available: bytes.len() as u64,
        });
    }
    if len < available {
        return Err(PickleError::TrailingBytes {
            extra: available - len,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    let stored = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
    let computed = checksum(bytes, payload);
    if stored != computed {
        return Err(PickleError::Checksum { stored, computed });
    }
    if found != fingerprint {
        return Err(PickleError::Fingerprint {
            found,
            expected: fingerprint,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_field_is_checked() {
        let good = seal(42, &[1, 2, 3]);
        assert_eq!(open(&good, 42).unwrap(), [1, 2, 3]);
        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(open(&b, 42), Err(PickleError::BadMagic)));
        let mut b = good.clone();
        let other = FORMAT_VERSION + 1;
        b[8..10].copy_from_slice(&other.to_le_bytes());
        assert!(matches!(
            open(&b, 42),
            Err(PickleError::UnsupportedVersion { found, .. }) if found == other
        ));
        let mut b = good.clone();
        b[11] = 1;
        assert!(matches!(open(&b, 42), Err(PickleError::BadHeader)));
        let mut b = good.clone();
        b[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(open(&b, 42), Err(PickleError::Truncated { .. })));
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(
            open(&b, 42),
            Err(PickleError::TrailingBytes { extra: 1 })
        ));
        assert!(matches!(
            open(&good, 41),
            Err(PickleError::Fingerprint { found: 42, .. })
        ));
    }
}
