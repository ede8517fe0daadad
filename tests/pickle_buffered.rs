//! Buffered channels in worlds: a pickle holds each buffered channel's capacity, its
//! buffered values in order, its blocked tasklets in order with the values they send, and its
//! settings and closing; a restore rebuilds all of it, and the blocked tasklets resume. A
//! corrupt buffered channel in a pickle is a typed error with a sentence.

mod common;

use std::rc::Rc;

use microthread::channel::BufferedChannel;
use microthread::pickle::{
    format, inspect, BodyImage, BufferedChannelRef, ChannelImage, ChannelKind, ChannelRef, Cx,
    Kind, PickleError, Registry, Status, World, WorldImage,
};
use microthread::{scheduler, Error};
use serde::{Deserialize, Serialize};

use common::on_thread;

/// Sends `next`, `next + 1`, ... up to `end` (excluded), one checkpoint per value.
#[derive(Serialize, Deserialize)]
struct Producer {
    out: BufferedChannelRef<u64>,
    next: u64,
    end: u64,
}

fn producer(cx: &mut Cx<Producer>) -> Result<(), PickleError> {
    while cx.state().next < cx.state().end {
        let Producer { out, next, .. } = *cx.state();
        cx.send(out, next)?;
        cx.state_mut().next += 1;
        cx.checkpoint()?;
    }
    Ok(())
}

/// Receives forever, keeping what it got, one checkpoint per value.
#[derive(Serialize, Deserialize)]
struct Consumer {
    input: BufferedChannelRef<u64>,
    got: Vec<u64>,
}

fn consumer(cx: &mut Cx<Consumer>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        let v = cx.receive(input)?;
        cx.state_mut().got.push(v);
        cx.checkpoint()?;
    }
}

struct Kinds {
    reg: Rc<Registry>,
    producer: Kind<Producer>,
    consumer: Kind<Consumer>,
}

fn kinds() -> Kinds {
    let mut r = Registry::new();
    let producer = r.register("producer", 1, producer).unwrap();
    let consumer = r.register("consumer", 1, consumer).unwrap();
    r.register_channel::<u64>("u64", 1).unwrap();
    Kinds {
        reg: Rc::new(r),
        producer,
        consumer,
    }
}

fn decoded(bytes: &[Vec<u8>]) -> Vec<u64> {
    bytes
        .iter()
        .map(|b| postcard::from_bytes(b).unwrap())
        .collect()
}

/// The checkpointed state of the world's tasklet `i`.
fn checkpoint_of<S: serde::de::DeserializeOwned>(image: &WorldImage, i: usize) -> S {
    match &image.tasklets[i].body {
        BodyImage::Resumable { checkpoint, .. } => postcard::from_bytes(checkpoint).unwrap(),
        BodyImage::Closure => panic!("tasklet {i} is a closure tasklet"),
    }
}

fn kill_all(tasklets: &[microthread::Tasklet]) {
    for t in tasklets {
        if t.alive() {
            t.kill().unwrap();
        }
    }
}

#[test]
fn buffered_values_come_back_in_order_with_the_capacity() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let plain = world.channel::<u64>().unwrap();
        let r = world.buffered_channel::<u64>(4).unwrap();
        for v in [30, 10, 20] {
            world.send(r, v).unwrap(); // room: main goes on
        }
        world.get_buffered(r).unwrap().set_preference(1);
        let bytes = world.pickle().unwrap();

        let image = inspect(&k.reg, &bytes).unwrap();
        assert_eq!(image.channels[0].kind, ChannelKind::Rendezvous);
        assert!(image.channels[0].buffered.is_empty());
        let c = &image.channels[1];
        assert_eq!(c.kind, ChannelKind::Buffered { capacity: 4 });
        assert_eq!(decoded(&c.buffered), [30, 10, 20]);
        assert!(c.queue.is_empty() && c.values.is_empty());

        let copy = World::restore(&k.reg, &bytes).unwrap();
        assert_eq!(copy.world.get(plain).unwrap().balance(), 0);
        let ch = copy.world.get_buffered(r).unwrap();
        assert_eq!((ch.capacity(), ch.len(), ch.balance()), (4, 3, 0));
        assert_eq!(ch.preference(), 1);
        let got: Vec<u64> = (0..3).map(|_| ch.receive().unwrap()).collect();
        assert_eq!(got, [30, 10, 20]);
        // The original is untouched.
        assert_eq!(world.get_buffered(r).unwrap().len(), 3);
    });
}

#[test]
fn a_producer_blocked_on_a_full_channel_resumes_after_restore() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let out = world.buffered_channel::<u64>(2).unwrap();
        let p = Producer {
            out,
            next: 0,
            end: 5,
        };
        world.spawn(k.producer, p).unwrap();
        scheduler::run().unwrap(); // 0 and 1 buffered; blocked sending 2
        let bytes = world.pickle().unwrap();

        let image = inspect(&k.reg, &bytes).unwrap();
        let c = &image.channels[0];
        assert_eq!(c.kind, ChannelKind::Buffered { capacity: 2 });
        assert_eq!(decoded(&c.buffered), [0, 1]);
        assert!(c.senders);
        assert_eq!(c.queue, [0]);
        assert_eq!(decoded(&c.values), [2]);
        assert_eq!(image.tasklets[0].status, Status::Blocked);

        let copy = World::restore(&k.reg, &bytes).unwrap();
        let ch = copy.world.get_buffered(out).unwrap();
        assert_eq!((ch.capacity(), ch.len(), ch.balance()), (2, 2, 1));
        assert_eq!(ch.queue(), [copy.tasklets[0].id()]);
        // The restored producer resumes from its blocked send on: 2, then 3 and 4 live.
        let got: Vec<u64> = (0..5).map(|_| ch.receive().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        scheduler::run().unwrap();
        assert!(!copy.tasklets[0].alive(), "the producer ends after 4");
        assert_eq!((ch.len(), ch.balance()), (0, 0));
        kill_all(&world.tasklets());
    });
}

#[test]
fn consumers_blocked_on_an_empty_channel_resume_after_restore_in_their_order() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let input = world.buffered_channel::<u64>(3).unwrap();
        for first in [vec![], vec![99]] {
            world
                .spawn(k.consumer, Consumer { input, got: first })
                .unwrap();
        }
        scheduler::run().unwrap(); // both wait: the buffer is empty
        let bytes = world.pickle().unwrap();
        let image = inspect(&k.reg, &bytes).unwrap();
        let c = &image.channels[0];
        assert!(!c.senders && c.buffered.is_empty());
        assert_eq!(c.queue, [0, 1]);

        let copy = World::restore(&k.reg, &bytes).unwrap();
        let ch = copy.world.get_buffered(input).unwrap();
        assert_eq!((ch.len(), ch.balance()), (0, -2));
        // Handed over in queue order (preference -1: each consumer runs at once and queues
        // again at the end).
        for v in [10, 11, 12] {
            copy.world.send(input, v).unwrap();
        }
        assert_eq!((ch.len(), ch.balance()), (0, -2));
        let again = inspect(&k.reg, &copy.world.pickle().unwrap()).unwrap();
        let first: Consumer = checkpoint_of(&again, 0);
        let second: Consumer = checkpoint_of(&again, 1);
        assert_eq!(first.got, [10, 12]);
        assert_eq!(second.got, [99, 11]);
        assert_eq!(again.channels[0].queue, [1, 0]);
        kill_all(&copy.tasklets);
        kill_all(&world.tasklets());
    });
}

#[test]
fn closing_comes_back_with_the_buffer_and_the_waiters() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let full = world.buffered_channel::<u64>(1).unwrap();
        let only_values = world.buffered_channel::<u64>(3).unwrap();
        let p = Producer {
            out: full,
            next: 5,
            end: 7,
        };
        world.spawn(k.producer, p).unwrap();
        scheduler::run().unwrap(); // 5 buffered, blocked sending 6
        world.send(only_values, 8).unwrap();
        world.get_buffered(full).unwrap().close();
        world.get_buffered(only_values).unwrap().close();
        let bytes = world.pickle().unwrap();
        let image = inspect(&k.reg, &bytes).unwrap();
        assert!(image.channels.iter().all(|c| c.closing));

        let copy = World::restore(&k.reg, &bytes).unwrap();
        let ch = copy.world.get_buffered(full).unwrap();
        assert!(ch.closing() && !ch.closed());
        assert_eq!((ch.len(), ch.balance()), (1, 1));
        assert_eq!(ch.receive().unwrap(), 5); // 6 moves into the buffer
        assert_eq!(ch.receive().unwrap(), 6);
        scheduler::run().unwrap(); // the producer's next send is 7 = end: it ends
        assert!(!copy.tasklets[0].alive());
        assert!(ch.closed());
        assert!(matches!(ch.receive(), Err(Error::ClosedChannel)));

        let other = copy.world.get_buffered(only_values).unwrap();
        assert!(other.closing() && !other.closed());
        assert!(matches!(other.send(1), Err(e) if matches!(e.error, Error::ClosedChannel)));
        assert_eq!(other.receive().unwrap(), 8);
        assert!(other.closed());
        kill_all(&world.tasklets());
    });
}

#[test]
fn capacity_zero_is_a_rendezvous_and_round_trips() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let out = world.buffered_channel::<u64>(0).unwrap();
        let p = Producer {
            out,
            next: 3,
            end: 5,
        };
        world.spawn(k.producer, p).unwrap();
        scheduler::run().unwrap(); // no room ever: blocked sending 3
        let bytes = world.pickle().unwrap();
        let image = inspect(&k.reg, &bytes).unwrap();
        assert_eq!(
            image.channels[0].kind,
            ChannelKind::Buffered { capacity: 0 }
        );
        assert!(image.channels[0].buffered.is_empty());
        let copy = World::restore(&k.reg, &bytes).unwrap();
        let ch = copy.world.get_buffered(out).unwrap();
        assert_eq!((ch.capacity(), ch.len(), ch.balance()), (0, 0, 1));
        assert_eq!(ch.receive().unwrap(), 3);
        assert_eq!(ch.receive().unwrap(), 4);
        kill_all(&world.tasklets());
    });
}

#[test]
fn a_reference_of_the_other_kind_is_refused() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        world.channel::<u64>().unwrap();
        world.buffered_channel::<u64>(2).unwrap();
        let plain_to_buffered: ChannelRef<u64> = postcard::from_bytes(&[1]).unwrap();
        let buffered_to_plain: BufferedChannelRef<u64> = postcard::from_bytes(&[0]).unwrap();
        assert!(matches!(
            world.get(plain_to_buffered),
            Err(PickleError::WrongChannelType { index: 1 })
        ));
        assert!(matches!(
            world.get_buffered(buffered_to_plain),
            Err(PickleError::WrongChannelType { index: 0 })
        ));
        assert!(matches!(
            world.send(plain_to_buffered, 1),
            Err(PickleError::WrongChannelType { index: 1 })
        ));
        let wrong_type: BufferedChannelRef<u32> = postcard::from_bytes(&[1]).unwrap();
        assert!(matches!(
            world.get_buffered(wrong_type),
            Err(PickleError::WrongChannelType { index: 1 })
        ));
    });
}

#[test]
fn a_world_buffers_at_most_max_buffered_values() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let max = format::MAX_BUFFERED as usize;
        let e = world.buffered_channel::<u64>(max + 1).unwrap_err();
        assert!(
            matches!(e, PickleError::TooMuchBuffer { available, .. } if available == max as u64)
        );
        world.buffered_channel::<u64>(max - 10).unwrap();
        let e = world.buffered_channel::<u64>(11).unwrap_err();
        assert!(
            matches!(
                e,
                PickleError::TooMuchBuffer {
                    capacity: 11,
                    available: 10
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("10 more values"), "{e}");
        world.buffered_channel::<u64>(10).unwrap();
        assert!(world.buffered_channel::<u32>(0).is_err()); // u32 is not registered
    });
}

#[test]
fn an_error_in_the_buffer_cannot_be_pickled() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let r = world.buffered_channel::<u64>(2).unwrap();
        let ch: BufferedChannel<u64> = world.get_buffered(r).unwrap();
        ch.send(1).unwrap();
        ch.send_throw(Box::new("stop")).unwrap();
        let e = world.pickle().unwrap_err();
        assert!(matches!(e, PickleError::Encode(_)), "{e}");
        assert!(e.to_string().contains("send_throw"), "{e}");
    });
}

// Corrupt pickles. The sample: a producer blocked on a full channel of capacity 2 (channel
// 0) and a consumer blocked on an empty channel of capacity 3 (channel 1).

fn sample() -> (Vec<u8>, WorldImage) {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let out = world.buffered_channel::<u64>(2).unwrap();
        let input = world.buffered_channel::<u64>(3).unwrap();
        let p = Producer {
            out,
            next: 0,
            end: 9,
        };
        world.spawn(k.producer, p).unwrap();
        let c = Consumer { input, got: vec![] };
        world.spawn(k.consumer, c).unwrap();
        scheduler::run().unwrap();
        let bytes = world.pickle().unwrap();
        let image = inspect(&k.reg, &bytes).unwrap();
        kill_all(&world.tasklets());
        (bytes, image)
    })
}

fn reseal(image: &WorldImage) -> Vec<u8> {
    let reg = kinds().reg;
    format::seal(reg.fingerprint(), &postcard::to_allocvec(image).unwrap())
}

/// The error restoring `bytes` gives (inspect's first, else the restore's).
fn refused(bytes: &[u8]) -> PickleError {
    match World::restore(&kinds().reg, bytes) {
        Ok(_) => panic!("a corrupt pickle was restored"),
        Err(e) => e,
    }
}

fn inconsistent(image: &WorldImage, says: &str) {
    let e = refused(&reseal(image));
    match &e {
        PickleError::Inconsistent(why) => assert!(why.contains(says), "{e}"),
        _ => panic!("not Inconsistent: {e}"),
    }
    assert!(e
        .to_string()
        .starts_with("the pickle describes an impossible world"));
}

#[test]
fn the_sample_round_trips_through_its_image() {
    let (bytes, image) = sample();
    assert_eq!(reseal(&image), bytes);
    assert_eq!(image.channels[0].buffered.len(), 2);
    assert_eq!(image.channels[1].queue, [1]);
}

#[test]
fn corrupt_buffered_channels_are_refused_with_a_sentence() {
    let (_, image) = sample();
    let edit = |f: &dyn Fn(&mut ChannelImage)| {
        let mut i = image.clone();
        f(&mut i.channels[0]);
        i
    };
    let value = postcard::to_allocvec(&7u64).unwrap();
    // A rendezvous channel with buffered values.
    inconsistent(
        &edit(&|c| c.kind = ChannelKind::Rendezvous),
        "a rendezvous channel holds 2 buffered values",
    );
    // Capacity 0 (or any capacity) smaller than what is buffered.
    inconsistent(
        &edit(&|c| c.kind = ChannelKind::Buffered { capacity: 0 }),
        "capacity 0 holds 2",
    );
    inconsistent(
        &edit(&|c| c.buffered.push(value.clone())),
        "capacity 2 holds 3",
    );
    // Senders wait with room in the buffer.
    inconsistent(&edit(&|c| drop(c.buffered.pop())), "with room (1 of 2");
    // Values buffered while receivers wait.
    let mut i = image.clone();
    i.channels[1].buffered.push(value.clone());
    inconsistent(&i, "receivers wait on a buffered channel that holds 1");
    // A hostile capacity is refused before anything is allocated.
    let mut i = image.clone();
    i.channels[1].kind = ChannelKind::Buffered { capacity: u64::MAX };
    inconsistent(&i, "capacities add up to more than");
    let mut i = image.clone();
    i.channels[1].kind = ChannelKind::Buffered {
        capacity: format::MAX_BUFFERED - 1,
    };
    inconsistent(&i, "capacities add up to more than");
    // A buffered value that does not decode as the channel's type: found by the restore.
    let mut i = image.clone();
    i.channels[0].buffered[1] = vec![0xff];
    assert!(inspect(&kinds().reg, &reseal(&i)).is_ok());
    let e = refused(&reseal(&i));
    assert!(matches!(e, PickleError::Payload(_)), "{e}");
}

#[test]
fn an_unknown_channel_kind_is_a_payload_error() {
    let (_, image) = sample();
    // The payload starts: 2 channels, type index 0, kind 1 (Buffered), capacity 2.
    let payload = postcard::to_allocvec(&image).unwrap();
    assert_eq!(payload[..4], [2, 0, 1, 2]);
    for kind in [2u8, 7, 0x7f] {
        let mut p = payload.clone();
        p[2] = kind;
        let bytes = format::seal(kinds().reg.fingerprint(), &p);
        let e = inspect(&kinds().reg, &bytes).unwrap_err();
        assert!(matches!(e, PickleError::Payload(_)), "kind {kind}: {e}");
        assert!(e
            .to_string()
            .starts_with("the pickle's payload does not decode"));
    }
    // Kind 0 (Rendezvous) reads the capacity byte as the next field: whatever it makes of
    // it, an error, never a panic.
    let mut p = payload.clone();
    p[2] = 0;
    let bytes = format::seal(kinds().reg.fingerprint(), &p);
    assert!(inspect(&kinds().reg, &bytes).is_err());
}

#[test]
fn a_pickle_of_another_format_version_is_refused() {
    let (bytes, _) = sample();
    for old in [2u16, 4] {
        let mut b = bytes.clone();
        b[8..10].copy_from_slice(&old.to_le_bytes());
        let e = inspect(&kinds().reg, &b).unwrap_err();
        assert!(
            matches!(e, PickleError::UnsupportedVersion { found, supported: 3 } if found == old),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!("the pickle has format version {old}; this build reads version 3")
        );
    }
}

#[test]
fn every_bit_flip_of_a_buffered_payload_is_an_error_or_a_world_that_restores() {
    let (_, image) = sample();
    let payload = postcard::to_allocvec(&image).unwrap();
    let reg = kinds().reg;
    let mut restored = 0;
    for i in 0..payload.len() {
        for bit in 0..8 {
            let mut p = payload.clone();
            p[i] ^= 1 << bit;
            let b = format::seal(reg.fingerprint(), &p);
            let Ok(again) = inspect(&reg, &b) else {
                continue;
            };
            // A flip inside a value or a state may still decode: the world it says is well
            // formed, its image round-trips, and restoring it gives it or an error.
            assert_eq!(
                inspect(&reg, &reseal(&again)).unwrap(),
                again,
                "at {i}.{bit}"
            );
            if let Ok(copy) = World::restore(&reg, &b) {
                restored += 1;
                kill_all(&copy.tasklets);
            }
        }
    }
    assert!(restored > 0, "no flip of a value restored");
}

#[test]
fn a_receiver_that_took_a_buffered_value_and_yielded_is_pickled_with_it() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let ch = world.buffered_channel::<u64>(1).unwrap();
        world.get_buffered(ch).unwrap().set_preference(1);
        let p = Producer {
            out: ch,
            next: 0,
            end: 4,
        };
        world.spawn(k.producer, p).unwrap();
        scheduler::run().unwrap(); // 0 buffered; blocked sending 1
        let c = Consumer {
            input: ch,
            got: vec![],
        };
        world.spawn(k.consumer, c).unwrap();
        // The consumer takes 0 from the buffer, the producer's 1 moves in, and preference +1
        // runs the producer at once (which blocks sending 2): the consumer is runnable with
        // 0 received, not yet resumed, when the pickler runs.
        let bytes = Rc::new(std::cell::RefCell::new(None));
        let (w, out) = (world.clone(), bytes.clone());
        scheduler::spawn(move || *out.borrow_mut() = Some(w.pickle())).unwrap();
        scheduler::run().unwrap();
        let bytes = bytes.borrow_mut().take().unwrap().unwrap();
        let image = inspect(&k.reg, &bytes).unwrap();
        assert_eq!(image.tasklets[1].status, Status::Runnable);
        assert_eq!(decoded(&image.channels[0].buffered), [1]);
        assert_eq!(decoded(&image.channels[0].values), [2]);

        let copy = World::restore(&k.reg, &bytes).unwrap();
        copy.insert_ring().unwrap();
        scheduler::run().unwrap();
        let done = inspect(&k.reg, &copy.world.pickle().unwrap()).unwrap();
        let restored: Consumer = checkpoint_of(&done, 1);
        assert_eq!(restored.got, [0, 1, 2, 3]);
        assert!(!copy.tasklets[0].alive());
        // The original, run on, got the same.
        let original: Consumer = checkpoint_of(&world.image().unwrap(), 1);
        assert_eq!(original.got, [0, 1, 2, 3]);
        kill_all(&copy.tasklets);
        kill_all(&world.tasklets());
    });
}
