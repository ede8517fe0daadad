//! Lazy restore: `World::restore` builds the tasklets without touching their stacks or
//! running their bodies; each is laid out and replayed the first time it runs. What that
//! must not change: the queues and balances, the values in flight, kills and pickles of
//! tasklets that never ran since the restore; and what it must change: no page faults.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use std::cell::RefCell;

use microthread::pickle::{inspect, ChannelRef, Cx, PickleError, Registry, Status, World};
use microthread::{scheduler, Error};
use serde::{Deserialize, Serialize};

use common::on_thread;

#[derive(Serialize, Deserialize)]
struct Summer {
    input: ChannelRef<u64>,
    output: ChannelRef<u64>,
    total: u64,
}

/// Receives, adds, sends its total, forever.
fn summer(cx: &mut Cx<Summer>) -> Result<(), PickleError> {
    loop {
        let Summer { input, output, .. } = *cx.state();
        let v = cx.receive(input)?;
        cx.state_mut().total += v;
        let total = cx.state().total;
        cx.send(output, total)?;
        cx.checkpoint()?;
    }
}

fn registry() -> (Rc<Registry>, microthread::pickle::Kind<Summer>) {
    let mut r = Registry::new();
    let k = r.register("summer", 1, summer).unwrap();
    r.register_channel::<u64>("u64", 1).unwrap();
    (Rc::new(r), k)
}

fn minor_faults() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut u), 0);
        u.ru_minflt
    }
}

/// A world of blocked summers: its registry, the world, its input channels, its output
/// channel, and its pickle.
type BlockedWorld = (
    Rc<Registry>,
    World,
    Vec<ChannelRef<u64>>,
    ChannelRef<u64>,
    Vec<u8>,
);

/// N summers, each blocked receiving on one of `chans` input channels, all sending to one
/// output channel; and the world's pickle.
fn blocked_world(n: u64, chans: u64) -> BlockedWorld {
    let (reg, k) = registry();
    let world = World::new(reg.clone());
    let inputs: Vec<_> = (0..chans)
        .map(|_| world.channel::<u64>().unwrap())
        .collect();
    let output = world.channel::<u64>().unwrap();
    for i in 0..n {
        let input = inputs[(i % chans) as usize];
        world
            .spawn(
                k,
                Summer {
                    input,
                    output,
                    total: i,
                },
            )
            .unwrap();
    }
    scheduler::run().unwrap();
    let bytes = world.pickle().unwrap();
    (reg, world, inputs, output, bytes)
}

fn kill_all(world: &World) {
    for t in world.tasklets() {
        if t.alive() {
            t.kill().unwrap();
        }
    }
}

#[test]
fn restoring_blocked_tasklets_touches_no_stack_and_waking_them_finishes_each() {
    on_thread(|| {
        const N: u64 = 2_000;
        let (reg, world, inputs, output, bytes) = blocked_world(N, 10);
        kill_all(&world);
        drop(world);
        // The measure is of stack pages: keep glibc's malloc from handing the warm-up's
        // freed heap back to the kernel (its trim of the heap's top), which the restore
        // would then fault in again, 200 pages of records, waiters and closures that are
        // no stack. (Tasklet records live on their stacks, so nothing else sits above the
        // warm-up's memory in the heap to stop the trim.)
        #[cfg(target_env = "gnu")]
        // SAFETY: mallopt only sets a tunable; any value is allowed.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
        // Warm the allocator and the stack pool's bookkeeping outside the measure.
        let warm = World::restore(&reg, &bytes).unwrap();
        kill_all(&warm.world);
        drop(warm);
        let before = minor_faults();
        let copy = World::restore(&reg, &bytes).unwrap();
        let faults = minor_faults() - before;
        // Under valgrind the count is its own (shadow memory), and under ASan every heap
        // allocation takes fresh pages (its allocator quarantines freed memory: 715 faults
        // for the 2,000 records, waiters and closures, none on a stack): the other legs
        // check it.
        if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_none()
            && std::env::var_os("MICROTHREAD_UNDER_ASAN").is_none()
        {
            assert!(
                faults < (N / 10) as i64,
                "restoring {N} blocked tasklets took {faults} minor page faults"
            );
        }
        for (i, t) in copy.tasklets.iter().enumerate() {
            assert!(t.blocked() && t.alive(), "tasklet {i}");
        }
        for (ci, &c) in inputs.iter().enumerate() {
            let ch = copy.world.get(c).unwrap();
            assert_eq!(ch.balance(), -((N / 10) as isize), "channel {ci}");
        }
        // Wake every one: each adds what it gets to its total and sends it.
        let out = copy.world.get(output).unwrap();
        let mut totals = Vec::new();
        for i in 0..N {
            let ch = copy.world.get(inputs[(i % 10) as usize]).unwrap();
            ch.send(1000).unwrap(); // the receiver runs now, replays, and blocks sending
            totals.push(out.receive().unwrap());
        }
        // The queue order is the original's (FIFO): the i-th woken is the i-th spawned.
        let want: Vec<u64> = (0..N).map(|i| i + 1000).collect();
        assert_eq!(totals, want);
        scheduler::run().unwrap(); // each goes back to its receive
        for (ci, &c) in inputs.iter().enumerate() {
            assert_eq!(
                copy.world.get(c).unwrap().balance(),
                -((N / 10) as isize),
                "{ci}"
            );
        }
        kill_all(&copy.world);
    });
}

thread_local! {
    /// Live `Counted` values of this thread, and how many were dropped.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static DROPPED: Cell<u64> = const { Cell::new(0) };
    /// How many times a `Sender` body was entered, and what a `Catcher` saw.
    static ENTERED: Cell<u64> = const { Cell::new(0) };
    static CAUGHT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A value in flight whose drops are counted (a deserialised copy counts as a new one).
#[derive(Debug)]
struct Counted(u64);

impl Counted {
    fn new(v: u64) -> Counted {
        LIVE.with(|l| l.set(l.get() + 1));
        Counted(v)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
        DROPPED.with(|d| d.set(d.get() + 1));
    }
}

impl Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Counted::new)
    }
}

#[derive(Serialize, Deserialize)]
struct Sender {
    out: ChannelRef<Counted>,
    n: u64,
}

/// Sends `Counted(n)`, `Counted(n + 1)`, ... forever.
fn sender(cx: &mut Cx<Sender>) -> Result<(), PickleError> {
    ENTERED.with(|e| e.set(e.get() + 1));
    loop {
        let Sender { out, n } = *cx.state();
        cx.send(out, Counted::new(n))?;
        cx.state_mut().n += 1;
        cx.checkpoint()?;
    }
}

#[derive(Serialize, Deserialize)]
struct Catcher {
    input: ChannelRef<u64>,
}

/// Receives until its receive fails, and says how.
fn catcher(cx: &mut Cx<Catcher>) -> Result<(), PickleError> {
    loop {
        let input = cx.state().input;
        match cx.receive(input) {
            Ok(v) => CAUGHT.with(|c| c.borrow_mut().push(format!("got {v}"))),
            Err(PickleError::Op(Error::Thrown(p))) => {
                let why = p.downcast_ref::<&str>().copied().unwrap_or("?");
                CAUGHT.with(|c| c.borrow_mut().push(format!("thrown {why}")));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        cx.checkpoint()?;
    }
}

struct Kinds {
    reg: Rc<Registry>,
    sender: microthread::pickle::Kind<Sender>,
    catcher: microthread::pickle::Kind<Catcher>,
    summer: microthread::pickle::Kind<Summer>,
}

fn kinds() -> Kinds {
    let mut r = Registry::new();
    let sender = r.register("sender", 1, sender).unwrap();
    let catcher = r.register("catcher", 1, catcher).unwrap();
    let summer = r.register("summer", 1, summer).unwrap();
    r.register_channel::<Counted>("counted", 1).unwrap();
    r.register_channel::<u64>("u64", 1).unwrap();
    Kinds {
        reg: Rc::new(r),
        sender,
        catcher,
        summer,
    }
}

#[test]
fn killing_a_never_run_sender_ends_it_unrun_and_drops_its_value_once() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let out = world.channel::<Counted>().unwrap();
        for n in [10, 20, 30] {
            world.spawn(k.sender, Sender { out, n }).unwrap();
        }
        scheduler::run().unwrap(); // all three block sending
        let bytes = world.pickle().unwrap();
        kill_all(&world);
        drop(world);
        assert_eq!(LIVE.with(Cell::get), 0, "the originals' values are gone");
        ENTERED.with(|e| e.set(0));

        let copy = World::restore(&k.reg, &bytes).unwrap();
        assert_eq!(
            LIVE.with(Cell::get),
            3,
            "the restored senders hold their values"
        );
        let ch = copy.world.get(out).unwrap();
        let ids: Vec<u64> = copy.tasklets.iter().map(|t| t.id()).collect();
        assert_eq!((ch.balance(), ch.queue()), (3, ids.clone()));
        let dropped = DROPPED.with(Cell::get);
        copy.tasklets[1].kill().unwrap();
        assert!(!copy.tasklets[1].alive());
        assert_eq!(ENTERED.with(Cell::get), 0, "a kill runs no body");
        assert_eq!(
            DROPPED.with(Cell::get) - dropped,
            1,
            "its value, dropped once"
        );
        assert_eq!((ch.balance(), ch.queue()), (2, vec![ids[0], ids[2]]));
        // The others deliver their restored values, in order, and only then run.
        assert_eq!(ch.receive().unwrap().0, 10);
        assert_eq!(ch.receive().unwrap().0, 30);
        assert_eq!(ENTERED.with(Cell::get), 0, "served, not yet run");
        scheduler::run().unwrap(); // they replay and block on their next sends
        assert_eq!(ENTERED.with(Cell::get), 2);
        assert_eq!(ch.receive().unwrap().0, 11);
        kill_all(&copy.world);
        drop(copy);
        assert_eq!(LIVE.with(Cell::get), 0, "nothing leaked");
    });
}

#[test]
fn an_error_thrown_into_a_never_run_receiver_is_its_receives_error() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let input = world.channel::<u64>().unwrap();
        world.spawn(k.catcher, Catcher { input }).unwrap();
        scheduler::run().unwrap();
        world.send(input, 1).unwrap();
        let bytes = world.pickle().unwrap();
        kill_all(&world);
        CAUGHT.with(|c| c.borrow_mut().clear());

        let copy = World::restore(&k.reg, &bytes).unwrap();
        let t = &copy.tasklets[0];
        assert!(t.blocked());
        t.throw(Error::Thrown(Box::new("stop"))).unwrap();
        assert!(!t.alive());
        // It checkpointed after "got 1" (before the pickle): its live receive failed.
        assert_eq!(CAUGHT.with(|c| c.borrow().clone()), ["thrown stop"]);
        assert_eq!(copy.world.get(input).unwrap().balance(), 0);
    });
}

/// The image with each tasklet's id replaced by `ids[i]`.
fn with_ids(
    mut image: microthread::pickle::WorldImage,
    ids: &[u64],
) -> microthread::pickle::WorldImage {
    for (t, &id) in image.tasklets.iter_mut().zip(ids) {
        t.id = id;
    }
    image
}

#[test]
fn a_restored_world_that_never_ran_pickles_to_the_same_image_with_the_same_queues() {
    on_thread(|| {
        let k = kinds();
        let world = World::new(k.reg.clone());
        let out = world.channel::<Counted>().unwrap();
        let ins: Vec<_> = (0..3).map(|_| world.channel::<u64>().unwrap()).collect();
        let sums = world.channel::<u64>().unwrap();
        world.get(ins[1]).unwrap().set_preference(1);
        world.get(ins[2]).unwrap().set_schedule_all(true);
        for n in 0..4 {
            world.spawn(k.sender, Sender { out, n: n * 100 }).unwrap();
        }
        for i in 0..6 {
            let input = ins[i % 3];
            world
                .spawn(
                    k.summer,
                    Summer {
                        input,
                        output: sums,
                        total: i as u64,
                    },
                )
                .unwrap();
        }
        scheduler::run().unwrap();
        world.send(ins[0], 5).unwrap(); // a summer blocks sending on `sums`
                                        // The first sender's value is taken: it is runnable inside its send.
        assert_eq!(world.get(out).unwrap().receive().unwrap().0, 0);
        let unrun = world
            .spawn(
                k.summer,
                Summer {
                    input: ins[0],
                    output: sums,
                    total: 0,
                },
            )
            .unwrap();
        unrun.set_name(Some("unrun"));
        let paused = world.spawn(k.sender, Sender { out, n: 7 }).unwrap();
        paused.remove().unwrap();
        world.get(ins[2]).unwrap().close();
        let bytes = world.pickle().unwrap();
        let original = inspect(&k.reg, &bytes).unwrap();
        let statuses: Vec<Status> = original.tasklets.iter().map(|t| t.status).collect();
        for st in [Status::Blocked, Status::Unrun, Status::Runnable] {
            assert!(statuses.contains(&st), "{st:?} in {statuses:?}");
        }

        let copy = World::restore(&k.reg, &bytes).unwrap();
        copy.insert_ring().unwrap();
        for (c, oc) in copy
            .world
            .image()
            .unwrap()
            .channels
            .iter()
            .zip(&original.channels)
        {
            assert_eq!(c, oc, "a channel's settings, queue and values");
        }
        let again = with_ids(copy.world.image().unwrap(), &copy.original_ids);
        assert_eq!(again, original);
        // And the restored world's channels show the same balances and queues.
        let map = |q: Vec<u64>| -> Vec<u64> {
            q.iter()
                .map(|id| {
                    copy.original_ids[copy.tasklets.iter().position(|t| t.id() == *id).unwrap()]
                })
                .collect()
        };
        let o_out = world.get(out).unwrap();
        let c_out = copy.world.get(out).unwrap();
        assert_eq!(c_out.balance(), o_out.balance());
        assert_eq!(map(c_out.queue()), o_out.queue());
        for &c in ins.iter().chain([sums].iter()) {
            let (o, n) = (world.get(c).unwrap(), copy.world.get(c).unwrap());
            assert_eq!(
                (n.balance(), n.closing(), n.preference()),
                (o.balance(), o.closing(), o.preference())
            );
            assert_eq!(map(n.queue()), o.queue());
        }
        kill_all(&copy.world);
        kill_all(&world);
    });
}

#[test]
fn a_replay_that_ends_before_its_blocked_operation_fails_its_tasklet_when_it_runs() {
    on_thread(|| {
        // A summer restored with a journal that says its receive returned, whose body then
        // finds a checkpoint where the journal still holds entries: the replay diverges.
        let k = kinds();
        let world = World::new(k.reg.clone());
        let input = world.channel::<u64>().unwrap();
        let output = world.channel::<u64>().unwrap();
        world
            .spawn(
                k.summer,
                Summer {
                    input,
                    output,
                    total: 0,
                },
            )
            .unwrap();
        scheduler::run().unwrap();
        world.send(input, 1).unwrap(); // blocks sending 1 on output, journal [receive]
        let mut image = world.image().unwrap();
        kill_all(&world);
        if let microthread::pickle::BodyImage::Resumable { journal, .. } =
            &mut image.tasklets[0].body
        {
            // A journal the body cannot follow: a schedule where it receives.
            journal[0].op = microthread::pickle::Op::Schedule;
        }
        let bytes = microthread::pickle::format::seal(
            k.reg.fingerprint(),
            &postcard::to_allocvec(&image).unwrap(),
        );
        let copy = World::restore(&k.reg, &bytes).expect("nothing to replay at restore");
        let t = copy.tasklets[0].clone();
        let out = copy.world.get(output).unwrap();
        assert_eq!(out.balance(), 1);
        assert_eq!(out.receive().unwrap(), 1); // the value it was restored with
        match scheduler::run() {
            Err(Error::Panicked { tasklet, payload }) => {
                assert_eq!(tasklet, t.id());
                match payload.downcast_ref::<PickleError>() {
                    Some(PickleError::Diverged { tasklet, .. }) => assert_eq!(*tasklet, t.id()),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("expected the replay to diverge: {other:?}"),
        }
        assert!(!t.alive());
    });
}
