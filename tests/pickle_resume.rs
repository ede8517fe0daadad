//! Resumable tasklets and worlds: pickled at a point, restored (in a fresh thread, or next to
//! the original), they go on exactly where they were. The scenarios are those of Stackless's
//! pickling (reference §5: the current tasklet, restorable, what an unpickled tasklet is,
//! blocked tasklets re-linked in order, dead and new tasklets, the copy independent of the
//! original, interrupted tasklets), in Rust form.

mod common;
#[path = "pickle_resume/pipeline.rs"]
mod pipeline;
#[path = "pickle_resume/queues.rs"]
mod queues;
#[path = "pickle_resume/states.rs"]
mod states;
#[path = "pickle_resume/transit.rs"]
mod transit;

use std::cell::RefCell;
use std::rc::Rc;

use microthread::pickle::{inspect, ChannelRef, Cx, Kind, PickleError, Registry, Status, World};
use microthread::scheduler::{self, RunOptions};
use microthread::Error;
use serde::{Deserialize, Serialize};

use common::on_thread;

thread_local! {
    static TRACE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn trace(s: String) {
    TRACE.with(|t| t.borrow_mut().push(s));
}

fn take_trace() -> Vec<String> {
    TRACE.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

#[derive(Serialize, Deserialize)]
struct Receiver {
    input: ChannelRef<String>,
    tag: String,
}

fn receiver(cx: &mut Cx<Receiver>) -> Result<(), PickleError> {
    let input = cx.state().input;
    let v = cx.receive(input)?;
    let tag = cx.state().tag.clone();
    cx.record(|| trace(format!("{tag} got {v}")))?;
    Ok(())
}

/// A `receiver` tasklet of `world` on `input`, tagged `tag`.
fn spawn_receiver(
    world: &World,
    k: Kind<Receiver>,
    input: ChannelRef<String>,
    tag: &str,
) -> microthread::Tasklet {
    world
        .spawn(
            k,
            Receiver {
                input,
                tag: tag.into(),
            },
        )
        .unwrap()
}

fn receiver_kind() -> (Rc<Registry>, Kind<Receiver>) {
    let mut r = Registry::new();
    let k = r.register("receiver", 1, receiver).unwrap();
    r.register_channel::<String>("string", 1).unwrap();
    (Rc::new(r), k)
}

#[derive(Serialize, Deserialize)]
struct SendOne {
    out: ChannelRef<String>,
}

fn string_sender(cx: &mut Cx<SendOne>) -> Result<(), PickleError> {
    let out = cx.state().out;
    cx.send(out, "hello".into())?;
    cx.record(|| trace("sender done".into()))?;
    Ok(())
}
