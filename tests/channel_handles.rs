//! Scenario tests for what a channel gives out besides values, on both kinds of channel
//! (`for_both_channel_kinds!`, tests/common/kinds.rs): the channel callback's channel handle
//! and the callback getter, the handles of the queued tasklets, iteration over `&channel`,
//! the rules for a destructor of an unwinding tasklet; then what only a `LocalChannel` can
//! carry (`Rc<RefCell<..>>` values) and what only a shared `Channel` can have (waiters of
//! another thread).

use std::cell::RefCell;
use std::rc::Rc;

use microthread::channel::{self, Channel, ChannelEvent, LocalChannel};
use microthread::scheduler::{self, current, spawn};
use microthread::{Error, Tasklet};

mod common;
use common::{log, on_thread, taken};

#[macro_use]
#[path = "common/kinds.rs"]
mod kinds;

for_both_channel_kinds! {
#[test]
fn the_callback_gets_the_channel_itself() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        // (id, balance, queue, closing) as the callback saw them.
        type Seen = Vec<(u64, isize, Vec<u64>, bool)>;
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let kept: Rc<RefCell<Option<Ch<u32>>>> = Rc::default();
        let (s, k) = (seen.clone(), kept.clone());
        channel::set_channel_callback(Some(Rc::new(move |ev: &ChannelEvent<'_>| {
            assert!(ev.channel.downcast_ref::<Ch<u64>>().is_none(), "the wrong item type");
            let own = ev.channel.downcast_ref::<Ch<u32>>().expect("the acting channel");
            assert_eq!(own.preference(), ev.channel.preference());
            s.borrow_mut().push((
                ev.channel.id(),
                ev.channel.balance(),
                ev.channel.queue(),
                ev.channel.closing(),
            ));
            *k.borrow_mut() = Some(own.clone());
        })));
        let c = ch.clone();
        let t = spawn(move || c.receive().unwrap()).unwrap();
        scheduler::run().unwrap(); // t blocks: seen before it is queued
        ch.close();
        ch.send(8).unwrap(); // seen with t in the queue, closing
        channel::set_channel_callback(None);
        assert_eq!(t.result::<u32>(), Some(8));
        let id = ch.id();
        assert_eq!(
            *seen.borrow(),
            [(id, 0, vec![], false), (id, -1, vec![t.id()], true)]
        );
        // The handle the callback kept is the channel.
        let kept = kept.borrow_mut().take().unwrap();
        assert_eq!(kept.id(), id);
        kept.open();
        assert!(!ch.closing());
    });
}

#[test]
fn the_callback_getter_returns_what_was_set_also_while_it_runs() {
    on_thread(|| {
        assert!(channel::channel_callback().is_none());
        let inside: Rc<RefCell<Vec<bool>>> = Rc::default();
        let i = inside.clone();
        let cb: channel::ChannelCallback = Rc::new(move |_: &ChannelEvent<'_>| {
            let me = channel::channel_callback().expect("installed while it runs");
            i.borrow_mut().push(Rc::strong_count(&me) >= 2);
        });
        assert!(channel::set_channel_callback(Some(cb.clone())).is_none());
        assert!(Rc::ptr_eq(&channel::channel_callback().unwrap(), &cb));
        let ch: Ch<u8> = Ch::new();
        let c = ch.clone();
        spawn(move || c.send(1).unwrap()).unwrap();
        assert_eq!(ch.receive().unwrap(), 1);
        assert_eq!(*inside.borrow(), [true, true]); // main's receive, the tasklet's send
        let old = channel::set_channel_callback(None).unwrap();
        assert!(Rc::ptr_eq(&old, &cb));
        assert!(channel::channel_callback().is_none());
    });
}

#[test]
fn a_callback_that_removes_itself_finishes_its_call_and_is_not_called_again() {
    on_thread(|| {
        let calls = Rc::new(RefCell::new(0));
        let c = calls.clone();
        channel::set_channel_callback(Some(Rc::new(move |_: &ChannelEvent<'_>| {
            let me = channel::set_channel_callback(None).expect("itself");
            *c.borrow_mut() += 1;
            drop(me); // not the last reference: the call in progress holds one
            *c.borrow_mut() += 1;
        })));
        let ch: Ch<u8> = Ch::new();
        let c2 = ch.clone();
        spawn(move || c2.send(1).unwrap()).unwrap();
        assert_eq!(ch.receive().unwrap(), 1);
        assert_eq!(*calls.borrow(), 2);
        assert!(channel::channel_callback().is_none());
    });
}

#[test]
fn queue_tasklets_are_the_blocked_tasklets_head_first() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        let ts: Vec<Tasklet> = (0..3)
            .map(|_| {
                let c = ch.clone();
                spawn(move || c.receive()).unwrap()
            })
            .collect();
        scheduler::run().unwrap();
        assert_eq!(ch.queue_tasklets(), ts);
        assert_eq!(
            ch.queue(),
            ts.iter().map(|t| t.id()).collect::<Vec<_>>()
        );
        // The handles work: kill the middle one through its handle.
        let queued = ch.queue_tasklets();
        assert!(queued.iter().all(|t| t.blocked()));
        queued[1].kill().unwrap();
        assert_eq!(ch.queue_tasklets(), [ts[0].clone(), ts[2].clone()]);
        ch.send_sequence([1, 2]).unwrap();
        assert!(ch.queue_tasklets().is_empty());
        let got: Vec<u32> = [&ts[0], &ts[2]]
            .iter()
            .map(|t| t.result::<microthread::Result<u32>>().unwrap().unwrap())
            .collect();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn a_reference_to_a_channel_is_an_iterator_over_received_values() {
    on_thread(|| {
        let ch: Ch<u32> = Ch::new();
        let c = ch.clone();
        spawn(move || {
            c.send_sequence(1..=3).unwrap();
            // Closing with a receiver waiting: the last send still finds it.
            c.close();
            c.send(4).unwrap();
        })
        .unwrap();
        let mut sum = 0;
        for v in &ch {
            sum += v.unwrap();
        }
        assert_eq!(sum, 10);
        assert!(ch.closed());
    });
}

#[test]
fn a_destructor_of_a_killed_tasklet_completes_a_rendezvous_but_may_not_block() {
    on_thread(|| {
        struct OnDrop(Ch<u32>, Rc<RefCell<Vec<String>>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                // A partner waits: the rendezvous stands (the receiver runs later).
                let sent = self.0.send(5);
                // Nobody waits any more: blocking is refused while the stack unwinds.
                let blocked = self.0.send(6);
                self.1.borrow_mut().push(format!(
                    "{:?} {:?}",
                    sent.map_err(|e| e.error.to_string()),
                    blocked.map_err(|e| (e.value, matches!(e.error, Error::Unwinding)))
                ));
            }
        }
        let (ch, l) = (Ch::new(), log());
        let c = ch.clone();
        let receiver = spawn(move || c.receive().unwrap()).unwrap();
        let guard = OnDrop(ch.clone(), l.clone());
        let dying = spawn(move || {
            let _g = guard;
            let _ = scheduler::schedule_remove();
        })
        .unwrap();
        scheduler::run().unwrap(); // the receiver blocks, the other pauses
        dying.kill().unwrap();
        assert_eq!(taken(&l), ["Ok(()) Err((Some(6), true))"]);
        assert_eq!(ch.balance(), 0);
        scheduler::run().unwrap();
        assert_eq!(receiver.result::<u32>(), Some(5));
    });
}
}

// ---------- only a LocalChannel: values that are not Send ----------

/// A game entity: shared, mutable, not `Send`.
struct Entity {
    hits: Vec<&'static str>,
}

#[test]
fn rc_refcell_values_travel_between_tasklets_of_one_thread() {
    on_thread(|| {
        // A pipeline: main -> hitter A -> hitter B -> main, each adding its name.
        let (to_a, a_to_b, back) = (
            LocalChannel::<Rc<RefCell<Entity>>>::new(),
            LocalChannel::new(),
            LocalChannel::new(),
        );
        for (name, rx, tx) in [
            ("A", to_a.clone(), a_to_b.clone()),
            ("B", a_to_b.clone(), back.clone()),
        ] {
            spawn(move || {
                for e in &rx {
                    let e: Rc<RefCell<Entity>> = e.unwrap();
                    e.borrow_mut().hits.push(name);
                    tx.send(e).unwrap();
                }
            })
            .unwrap();
        }
        let entity = Rc::new(RefCell::new(Entity { hits: vec![] }));
        for _ in 0..2 {
            to_a.send(entity.clone()).unwrap();
            let got = back.receive().unwrap();
            assert!(Rc::ptr_eq(&got, &entity), "the same object came back");
        }
        assert_eq!(entity.borrow().hits, ["A", "B", "A", "B"]);
        scheduler::run().unwrap(); // both hitters go back to waiting
                                   // Main holds the only reference left: nothing was copied or leaked.
        assert_eq!(Rc::strong_count(&entity), 1);
        assert_eq!((to_a.balance(), a_to_b.balance()), (-1, -1));
    });
}

#[test]
fn a_value_a_failed_send_gives_back_is_the_same_rc() {
    on_thread(|| {
        let ch = LocalChannel::<Rc<RefCell<Entity>>>::new();
        let e = Rc::new(RefCell::new(Entity { hits: vec!["x"] }));
        ch.close();
        let failed = ch.send(e.clone()).unwrap_err();
        assert!(matches!(failed.error, Error::ClosedChannel));
        assert!(Rc::ptr_eq(&failed.value.unwrap(), &e));
        assert_eq!(Rc::strong_count(&e), 1);
    });
}

#[test]
fn a_local_channel_is_debug_formatted_under_its_own_name() {
    on_thread(|| {
        let ch = LocalChannel::<Rc<u8>>::new();
        ch.set_preference(0);
        assert_eq!(
            format!("{ch:?}"),
            format!(
                "LocalChannel {{ id: {}, balance: 0, preference: 0, schedule_all: false, \
                 closing: false }}",
                ch.id()
            )
        );
    });
}

// ---------- only a Channel: waiters of several threads ----------

#[test]
fn queue_tasklets_leaves_out_the_waiters_of_other_threads() {
    scheduler::init_thread();
    let ch: Channel<u32> = Channel::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let c = ch.clone();
    let other = microthread::spawn_thread(move || {
        let id = current().id();
        ready_tx.send(id).unwrap();
        c.receive().unwrap() // main of the other thread blocks (sleeps)
    });
    let other_id = ready_rx.recv().unwrap();
    while ch.balance() != -1 {
        std::thread::yield_now();
    }
    let c = ch.clone();
    let mine = spawn(move || c.receive().unwrap()).unwrap();
    scheduler::run().unwrap();
    assert_eq!(ch.queue(), [other_id, mine.id()]);
    assert_eq!(ch.queue_tasklets(), std::slice::from_ref(&mine));
    ch.send_sequence([1, 2]).unwrap();
    assert_eq!(other.join().unwrap(), 1);
    scheduler::run().unwrap();
    assert_eq!(mine.result::<u32>(), Some(2));
}
