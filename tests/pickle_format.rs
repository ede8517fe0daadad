//! The file format and its loader: every class of corrupt or hostile input gives its typed
//! error with a sentence, and no mutation of a valid pickle panics, hangs or allocates
//! hugely: loading it gives an error or the very same world.

mod common;

use microthread::pickle::{
    format, inspect, BodyImage, PickleError, Registry, Status, World, WorldImage,
};
use microthread::scheduler;
use proptest::prelude::*;

use common::on_thread;
#[path = "common/pickle_sample.rs"]
#[allow(dead_code)]
mod pickle_sample;
use pickle_sample::{receiver, registry, sample_pickles};

/// The sample's last world: two blocked resumable tasklets (one with a journal) and a third
/// blocked on the other channel, one unrun, a dead one, two channels with settings.
fn sample() -> (Vec<u8>, WorldImage) {
    on_thread(|| {
        let bytes = sample_pickles().pop().unwrap();
        let image = inspect(&registry(), &bytes).unwrap();
        (bytes, image)
    })
}

fn reseal(image: &WorldImage) -> Vec<u8> {
    format::seal(
        registry().fingerprint(),
        &postcard::to_allocvec(image).unwrap(),
    )
}

fn load(bytes: &[u8]) -> Result<WorldImage, PickleError> {
    inspect(&registry(), bytes)
}

#[test]
fn the_sample_holds_every_status() {
    let (_, image) = sample();
    let statuses: Vec<Status> = image.tasklets.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Blocked,
            Status::Blocked,
            Status::Blocked,
            Status::Unrun,
            Status::Dead
        ]
    );
    assert_eq!(image.channels[0].queue, [1, 0]); // the first was served and queued again
    assert!(image.channels[1].closing && image.channels[1].schedule_all);
}

#[test]
fn every_truncation_is_an_error() {
    let (bytes, _) = sample();
    for len in 0..bytes.len() {
        let e = load(&bytes[..len]).unwrap_err();
        assert!(matches!(e, PickleError::Truncated { .. }), "at {len}: {e}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn every_bit_flip_is_an_error() {
    let (bytes, _) = sample();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let e = load(&b).unwrap_err();
            let expected = match i {
                0..=7 => matches!(e, PickleError::BadMagic),
                8..=9 => matches!(e, PickleError::UnsupportedVersion { .. }),
                10..=11 => matches!(e, PickleError::BadHeader),
                20..=27 => matches!(
                    e,
                    PickleError::Truncated { .. } | PickleError::TrailingBytes { .. }
                ),
                _ => matches!(e, PickleError::Checksum { .. }),
            };
            assert!(expected, "byte {i} bit {bit}: {e}");
        }
    }
}

#[test]
fn a_wrong_magic_or_version_is_named() {
    let (bytes, _) = sample();
    assert!(matches!(
        load(b"PNG\x89 not a pickle at all, really"),
        Err(PickleError::BadMagic)
    ));
    let mut b = bytes.clone();
    b[8..10].copy_from_slice(&7u16.to_le_bytes());
    let e = load(&b).unwrap_err();
    assert!(matches!(
        e,
        PickleError::UnsupportedVersion {
            found: 7,
            supported: 3
        }
    ));
    assert_eq!(
        e.to_string(),
        "the pickle has format version 7; this build reads version 3"
    );
}

#[test]
fn another_programs_registry_is_refused_by_fingerprint() {
    let (bytes, _) = sample();
    let mut other = Registry::new();
    other.register("receiver", 2, receiver).unwrap(); // another version
    other.register_channel::<u32>("u32", 1).unwrap();
    let e = inspect(&other, &bytes).unwrap_err();
    assert!(matches!(e, PickleError::Fingerprint { .. }), "{e}");
    let none = Registry::new();
    assert!(matches!(
        inspect(&none, &bytes),
        Err(PickleError::Fingerprint { .. })
    ));
}

#[test]
fn a_hostile_payload_length_allocates_nothing_and_is_an_error() {
    let (bytes, _) = sample();
    for len in [u64::MAX, u64::MAX / 2, 1 << 40, bytes.len() as u64] {
        let mut b = bytes.clone();
        b[20..28].copy_from_slice(&len.to_le_bytes());
        assert!(
            matches!(load(&b), Err(PickleError::Truncated { .. })),
            "{len}"
        );
    }
}

#[test]
fn hostile_lengths_inside_the_payload_are_errors() {
    // A sequence that claims 2^62 channels, a byte string that claims 2^62 bytes.
    for prefix in [
        vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ] {
        let sealed = format::seal(registry().fingerprint(), &prefix);
        assert!(matches!(load(&sealed), Err(PickleError::Payload(_))));
    }
    let (_, image) = sample();
    let mut payload = postcard::to_allocvec(&image).unwrap();
    payload.truncate(payload.len() - 3);
    let sealed = format::seal(registry().fingerprint(), &payload);
    assert!(matches!(load(&sealed), Err(PickleError::Payload(_))));
    let mut payload = postcard::to_allocvec(&image).unwrap();
    payload.push(0);
    let sealed = format::seal(registry().fingerprint(), &payload);
    assert!(matches!(load(&sealed), Err(PickleError::Payload(_))));
}

#[test]
fn bad_references_are_typed_errors() {
    let (_, image) = sample();
    let mut i = image.clone();
    if let BodyImage::Resumable { kind, .. } = &mut i.tasklets[0].body {
        *kind = 9;
    }
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::UnknownKind { index: 9 })
    ));
    let mut i = image.clone();
    i.channels[0].type_index = 4;
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::UnknownChannelType { index: 4 })
    ));
    let mut i = image.clone();
    i.ring.push(99);
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::MissingTasklet { index: 99 })
    ));
    let mut i = image.clone();
    i.channels[0].queue.push(42);
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::MissingTasklet { index: 42 })
    ));
    let mut i = image.clone();
    i.tasklets[1].id = i.tasklets[0].id;
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::DuplicateTasklet { .. })
    ));
    let mut i = image.clone();
    i.ring.push(0); // a blocked tasklet in the ring
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::Inconsistent(_))
    ));
    let mut i = image.clone();
    i.channels[0].queue.clear(); // blocked tasklets in no queue
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::Inconsistent(_))
    ));
    let mut i = image.clone();
    i.channels[0].queue.push(1); // queued twice
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::Inconsistent(_))
    ));
    let mut i = image.clone();
    i.channels[1].preference = 5;
    assert!(matches!(
        load(&reseal(&i)),
        Err(PickleError::Inconsistent(_))
    ));
    assert_eq!(load(&reseal(&image)).unwrap(), image);
}

#[test]
fn a_state_that_does_not_decode_is_an_error_at_restore() {
    let (_, mut image) = sample();
    if let BodyImage::Resumable { checkpoint, .. } = &mut image.tasklets[0].body {
        checkpoint.clear();
    }
    let bytes = reseal(&image);
    on_thread(move || {
        let e = World::restore(&registry(), &bytes).err().unwrap();
        assert!(matches!(e, PickleError::Payload(_)), "{e}");
    });
}

#[test]
fn a_restored_sample_is_the_same_world() {
    let (bytes, image) = sample();
    on_thread(move || {
        let copy = World::restore(&registry(), &bytes).unwrap();
        let again = copy.world.image().unwrap();
        // The copies have new ids; everything else is the same.
        let strip = |mut i: WorldImage| {
            for t in &mut i.tasklets {
                t.id = 0;
            }
            i
        };
        assert_eq!(strip(again), strip(image));
    });
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Splice(usize, usize, Vec<u8>),
    HugeLength(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            0usize..16,
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(i, n, v)| Mutation::Splice(i, n, v)),
        (any::<usize>(), 1u8..10).prop_map(|(i, n)| Mutation::HugeLength(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation, from: usize) {
    let span = bytes.len().saturating_sub(from).max(1);
    match m {
        Mutation::Flip(i, b) => {
            let i = from + i % span;
            if i < bytes.len() {
                bytes[i] ^= 1 << b;
            }
        }
        Mutation::Truncate(n) => bytes.truncate(from + n % span),
        Mutation::Splice(i, n, v) => {
            let i = (from + i % span).min(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.splice(i..end, v.iter().copied());
        }
        // A varint of n continuation bytes: a huge length wherever a length was.
        Mutation::HugeLength(i, n) => {
            let i = (from + i % span).min(bytes.len());
            let mut v = vec![0xffu8; *n as usize];
            v.push(0x0f);
            bytes.splice(i..i, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated pickles (the checksum catches these): an error or the same world.
    #[test]
    fn mutated_pickles_give_an_error_or_the_same_world(
        ms in proptest::collection::vec(mutation(), 1..4)
    ) {
        let (bytes, image) = sample();
        let mut b = bytes.clone();
        for m in &ms {
            apply(&mut b, m, 0);
        }
        if let Ok(got) = load(&b) {
            prop_assert_eq!(got, image);
        }
    }

    /// Mutated payloads, sealed again with a valid checksum: the decoder and the checks
    /// see them. Loading and restoring give an error or a world, never a panic.
    #[test]
    fn mutated_payloads_resealed_never_panic(
        ms in proptest::collection::vec(mutation(), 1..4)
    ) {
        let (bytes, _) = sample();
        let mut payload = bytes[format::HEADER_LEN..].to_vec();
        for m in &ms {
            apply(&mut payload, m, 0);
        }
        let sealed = format::seal(registry().fingerprint(), &payload);
        if load(&sealed).is_ok() {
            // Whatever the copy does when run (a replay may diverge), it ends in an
            // error or a world: a panic fails the test.
            let sentence = on_thread(move || match World::restore(&registry(), &sealed) {
                Ok(copy) => {
                    copy.insert_ring().unwrap();
                    let _ = scheduler::run();
                    None
                }
                Err(e) => Some(e.to_string()),
            });
            prop_assert!(sentence.map_or(true, |s| !s.is_empty()));
        }
    }
}
