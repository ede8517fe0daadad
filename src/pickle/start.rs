//! Starting a world's resumable tasklets: a new one ([`start_resumable`], for
//! [`World::spawn`](super::World::spawn)), a restored one that waits on the heap until it
//! first runs ([`start_lazy`]), and that first run ([`run_restored`]).

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cx::Cx;
use super::journal::Record;
use super::registry::Body;
use super::world::WorldInner;
use super::PickleError;
use crate::{scheduler, Tasklet};

/// Makes the (paused) tasklet that runs `body` from `state` with `record`'s journal.
pub(super) fn start_resumable<S>(
    world: &Rc<WorldInner>,
    body: Body<S>,
    record: Rc<RefCell<Record>>,
    state: S,
) -> Result<Tasklet, PickleError>
where
    S: Serialize + DeserializeOwned + 'static,
{
    let weak = Rc::downgrade(world);
    Tasklet::new(move || -> Result<(), PickleError> {
        let mut cx = Cx {
            state,
            me: scheduler::current().id(),
            record,
            world: weak,
            restoring: false,
            parked: None,
            thrown: None,
        };
        body(&mut cx)
    })
    .map_err(|e| PickleError::Op(crate::Error::NoStack(e)))
}

/// Where a restore puts the waiter of a restored tasklet that was blocked (see
/// [`restore`](super::restore)); only the tasklet's closure holds it, so a kill before the
/// tasklet ran drops it, and the value it was sending, with the closure.
pub(super) type ParkedCell = Rc<RefCell<Option<Box<dyn std::any::Any>>>>;

/// As [`start_resumable`], lazily (the stack is laid out when the tasklet first runs, see
/// `restore`): the tasklet is paused and never ran; `parked` receives the waiter if the
/// restore queues it on a channel.
pub(super) fn start_lazy<S>(
    world: &Rc<WorldInner>,
    body: Body<S>,
    record: Rc<RefCell<Record>>,
    state: S,
    parked: ParkedCell,
) -> Result<Tasklet, PickleError>
where
    S: Serialize + DeserializeOwned + 'static,
{
    let weak = Rc::downgrade(world);
    crate::scheduler::TaskletBuilder::new()
        .create_lazy(move |thrown: Option<crate::Error>| {
            run_restored(body, state, record, weak, parked, thrown)
        })
        .map_err(|e| PickleError::Op(crate::Error::NoStack(e)))
}

/// The first run of a restored tasklet: the body from its checkpoint, replaying its
/// journal; with the waiter of the channel operation it was restored blocked in, if any,
/// whose outcome that operation takes (`Cx::send`, `Cx::receive`). `thrown` is the error
/// thrown into it before this run.
fn run_restored<S>(
    body: Body<S>,
    state: S,
    record: Rc<RefCell<Record>>,
    world: std::rc::Weak<WorldInner>,
    parked: ParkedCell,
    thrown: Option<crate::Error>,
) -> Result<(), PickleError>
where
    S: Serialize + DeserializeOwned + 'static,
{
    record.borrow_mut().restored = None;
    let parked = parked.borrow_mut().take();
    if parked.is_none() {
        if let Some(e) = thrown {
            // As for any tasklet that never ran: the error ends it, as its own.
            std::panic::resume_unwind(thrown_payload(e));
        }
    }
    let mut cx = Cx {
        state,
        me: scheduler::current().id(),
        record,
        world,
        restoring: parked.is_some(),
        parked,
        thrown,
    };
    let result = body(&mut cx);
    if cx.restoring {
        // The replay never reached the operation it was blocked in: the restore diverged,
        // found only now.
        let e = match result {
            Err(e @ PickleError::Diverged { .. }) => e,
            other => PickleError::Diverged {
                tasklet: cx.me,
                detail: match other {
                    Ok(()) => "its replay returned before the channel operation it was blocked in"
                        .to_owned(),
                    Err(e) => format!(
                        "its replay failed before the channel operation it was blocked in: {e}"
                    ),
                },
            },
        };
        drop(cx);
        super::restore::fail_restored(e);
    }
    result
}

/// The payload an error thrown into a tasklet that never ran ends it with (as the
/// scheduler's): what an [`Error::Thrown`](crate::Error::Thrown) carries, or the error.
fn thrown_payload(error: crate::Error) -> crate::error::Payload {
    match error {
        crate::Error::Thrown(payload) => payload,
        other => Box::new(other),
    }
}
