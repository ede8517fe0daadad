//! The steps of a program and the events they log, shared by the model (`model.rs`) and the
//! real run (`real.rs`): [`Op`], [`Program`], the trace ([`Ev`], [`Out`], [`E`]) and the values
//! both sides derive from a step (sent values, thrown payloads, panic messages, flags).

/// At most this many tasklets (main included) per program; further creations log `Cap`.
pub const MAX_TASKLETS: usize = 8;

/// The step number of an event the error handler logs (it runs between steps).
pub const HANDLER_STEP: usize = usize::MAX;

/// What an error handler that panics panics with, for a payload `msg`.
pub(super) fn handler_panic(msg: &str) -> String {
    format!("boomh:{msg}")
}

/// One step of a script. Tasklet, script and channel numbers are taken modulo what exists.
#[derive(Clone, Debug)]
pub enum Op {
    Log,
    Query,
    Schedule,
    ScheduleRemove,
    /// `spawn` a tasklet running script `1 + n % (scripts - 1)`.
    Spawn(usize),
    /// `Tasklet::new` (alive, paused), same script choice.
    New(usize),
    Insert(usize),
    Remove(usize),
    Run(usize),
    Switch(usize),
    Kill {
        target: usize,
        pending: bool,
    },
    Throw {
        target: usize,
        fatal: bool,
        pending: bool,
    },
    /// A (nested) `scheduler::run()`.
    RunScheduler,
    Return,
    Panic,
    Send(usize),
    SendThrow {
        ch: usize,
        fatal: bool,
    },
    /// `send_sequence` of this many values.
    SendSeq(usize, usize),
    Receive(usize),
    Close(usize),
    Open(usize),
    Preference(usize, i8),
    ScheduleAll(usize, bool),
    /// `Tasklet::bound` (bound, not alive), same script choice as `Spawn`.
    Bound(usize),
    /// `setup` of a tasklet.
    Setup(usize),
    /// `unbind` of a tasklet.
    Unbind(usize),
    /// `bind` of a tasklet to script `1 + .1 % (scripts - 1)`.
    Bind(usize, usize),
    /// `set_error_handler`: 0 none, 1 one that logs and swallows, 2 one that logs and panics.
    ErrorHandler(u8),
}

#[derive(Clone, Debug)]
pub struct Program {
    pub scripts: Vec<Vec<Op>>,
    pub channels: usize,
}

impl Program {
    pub(super) fn script_of(&self, n: usize) -> usize {
        1 + n % (self.scripts.len() - 1)
    }

    pub(super) fn channel(&self, n: usize) -> usize {
        n % self.channels
    }
}

/// An error as the trace records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum E {
    Deadlock,
    MainReceiving,
    MainSending,
    Closed,
    RunBlocked,
    RunDead,
    RemoveBlocked,
    RemoveCurrent,
    ThrowDead,
    TaskletAlive,
    NotBound,
    BindCurrent,
    BindScheduled,
    HasCState,
    UnbindMain,
    Thrown(String),
    /// A panic of tasklet number `.0`, with its message.
    Panicked(usize, String),
    Other(String),
}

/// What a step's call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Done,
    Skip,
    Cap,
    /// Created tasklet number `.0`.
    Made(usize),
    /// Received a value.
    Value(u32),
    /// `send_sequence` sent this many.
    Sent(usize),
    Err(E),
    /// A send failed and gave this value (or thrown payload) back.
    ErrBack(E, String),
    /// The error handler saw this payload (step [`HANDLER_STEP`]).
    Handled(String),
    /// Runcount aside (in every event), each tasklet's flags: `a`live, `s`cheduled,
    /// `b`locked, `p`aused, `c`urrent, `-` where false.
    State(Vec<String>),
}

impl Out {
    pub(super) fn error(&self) -> Option<&E> {
        match self {
            Out::Err(e) | Out::ErrBack(e, _) => Some(e),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub tasklet: usize,
    pub step: usize,
    pub out: Out,
    pub runcount: usize,
    /// Per channel: balance, and the queue as tasklet numbers, head first.
    pub channels: Vec<(isize, Vec<usize>)>,
}

pub(super) fn flags(
    alive: bool,
    scheduled: bool,
    blocked: bool,
    paused: bool,
    current: bool,
) -> String {
    [
        (alive, 'a'),
        (scheduled, 's'),
        (blocked, 'b'),
        (paused, 'p'),
        (current, 'c'),
    ]
    .iter()
    .map(|&(on, c)| if on { c } else { '-' })
    .collect()
}

/// The unique value a send step sends (item `i` of a sequence).
pub(super) fn value(tasklet: usize, step: usize, i: usize) -> u32 {
    ((tasklet * 64 + step) * 4 + i) as u32 + 1
}

pub(super) fn thrown_payload(tasklet: usize, step: usize, fatal: bool) -> String {
    format!("x{tasklet}.{step}{}", if fatal { "!" } else { "" })
}

pub(super) fn is_fatal(e: &E) -> Option<String> {
    match e {
        E::Thrown(p) if p.ends_with('!') => Some(format!("re:{p}")),
        _ => None,
    }
}
