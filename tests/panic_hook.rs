//! `panic_hook::install()` (issue 12 item 3): a tasklet's panic is reported with its id,
//! name and thread; a main tasklet's goes to the previous hook unchanged. Each case runs in a
//! forked child (tests/common/death.rs) so that its hook and its stderr are its own.
//! The children write with `writeln!(stderr())`, not `eprintln!`, which the test harness
//! captures (the hook writes to the real stderr, fd 2, as std's hook does when not captured).

#[path = "common/death.rs"]
mod death;

use std::io::Write;

use microthread::{panic_hook, scheduler, Error};

#[test]
fn a_named_tasklet_panic_names_the_tasklet() {
    let _serial = death::serial();
    let mut id = 0;
    let death = death::in_child(|| {
        std::env::remove_var("RUST_BACKTRACE");
        panic_hook::install();
        let t = scheduler::spawn(|| panic!("worker failed: {}", 42)).unwrap();
        t.set_name(Some("worker-3"));
        writeln!(std::io::stderr(), "id={}", t.id()).unwrap();
        let e = scheduler::run().unwrap_err();
        assert!(matches!(e, Error::Panicked { tasklet, .. } if tasklet == t.id()));
    });
    assert_eq!(
        death.exit_code(),
        Some(0),
        "{}: {:?}",
        death.describe(),
        death.stderr
    );
    for line in death.stderr.lines() {
        if let Some(n) = line.strip_prefix("id=") {
            id = n.parse().unwrap();
        }
    }
    // The child is a fork of this thread: its name is this thread's.
    let thread = std::thread::current();
    let thread = match thread.name() {
        Some(name) => format!("'{name}'"),
        None => format!("{:?}", thread.id()),
    };
    let want =
        format!("tasklet {id} (\"worker-3\") on thread {thread} panicked at tests/panic_hook.rs:");
    assert!(
        death.stderr.contains(&want),
        "want {want:?} in {:?}",
        death.stderr
    );
    assert!(
        death.stderr.contains(":\nworker failed: 42\n"),
        "{:?}",
        death.stderr
    );
    assert!(
        !death.stderr.contains("\nthread ") && !death.stderr.starts_with("thread "),
        "std's line is replaced: {:?}",
        death.stderr
    );
}

#[test]
fn an_unnamed_tasklet_panic_gives_its_id() {
    let _serial = death::serial();
    let death = death::in_child(|| {
        std::env::remove_var("RUST_BACKTRACE");
        panic_hook::install();
        let t = scheduler::spawn(|| std::panic::panic_any(7u32)).unwrap();
        writeln!(std::io::stderr(), "id={}", t.id()).unwrap();
        assert!(scheduler::run().is_err());
    });
    assert_eq!(death.exit_code(), Some(0), "{:?}", death.stderr);
    let id: u64 = death
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("id="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        death.stderr.contains(&format!("tasklet {id} on thread ")),
        "{:?}",
        death.stderr
    );
    assert!(
        death.stderr.contains(":\nBox<dyn Any>\n"),
        "{:?}",
        death.stderr
    );
}

#[test]
fn a_main_tasklet_panic_goes_to_the_previous_hook() {
    let _serial = death::serial();
    let death = death::in_child(|| {
        std::panic::set_hook(Box::new(|info| {
            let line = info.location().unwrap().line();
            writeln!(std::io::stderr(), "previous hook: {line}").unwrap();
        }));
        panic_hook::install();
        scheduler::init_thread();
        let r = std::panic::catch_unwind(|| panic!("in main"));
        assert!(r.is_err());
    });
    assert_eq!(death.exit_code(), Some(0), "{:?}", death.stderr);
    assert!(
        death.stderr.starts_with("previous hook: "),
        "{:?}",
        death.stderr
    );
    assert!(!death.stderr.contains("tasklet"), "{:?}", death.stderr);
}

#[test]
fn a_kill_is_not_reported() {
    let _serial = death::serial();
    let death = death::in_child(|| {
        panic_hook::install();
        let t = scheduler::spawn(|| loop {
            scheduler::schedule().unwrap();
        })
        .unwrap();
        scheduler::schedule().unwrap();
        t.kill().unwrap();
        assert!(!t.alive());
    });
    assert_eq!(death.exit_code(), Some(0), "{:?}", death.stderr);
    assert_eq!(death.stderr, "", "a kill's unwind is silent");
}
