//! gdb/microthread.py (issue 12 item 4): gdb, in batch mode, runs this test binary's
//! `target_program` (tasklets in every state on two threads, stopped at a breakpoint) and
//! checks that `info tasklets` lists them with their names and states, and that `tasklet bt
//! N` shows tasklet N's own function. Also on a core file of the stopped program, and the
//! auto-loading through the `.debug_gdb_scripts` section.
//!
//! gdb debugs this same binary (run again by gdb, natively only): skipped with a message
//! when gdb is missing, under valgrind, and under qemu-user (a cross target).

#[path = "common/death.rs"]
mod death;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use microthread::scheduler::{self, dump::DumpState, spawn};
use microthread::{Channel, Tasklet};

/// Where gdb stops the target program.
#[no_mangle]
#[inline(never)]
pub extern "C" fn microthread_gdb_test_breakpoint(n: usize) -> usize {
    black_box(n)
}

#[inline(never)]
fn receiver_body(ch: Channel<u32>) -> u32 {
    black_box(ch.receive().unwrap_or(0))
}

#[inline(never)]
fn sender_body(ch: Channel<u32>) {
    black_box(ch.send(7).ok());
}

#[inline(never)]
fn sleeper_body() {
    black_box(scheduler::sleep(Duration::from_secs(3600)).ok());
}

#[inline(never)]
fn pauser_body() {
    black_box(scheduler::schedule_remove().ok());
}

#[inline(never)]
fn yielder_body() {
    black_box(scheduler::schedule().ok());
}

#[inline(never)]
fn far_receiver_body(ch: Channel<u64>) -> u64 {
    // Another type than `receiver_body`'s, so that the two are not folded into one.
    black_box(ch.receive().unwrap_or(0)).wrapping_mul(3)
}

/// The program gdb runs: only when gdb starts this binary for it (the variable set).
#[test]
fn target_program() {
    if std::env::var_os("MICROTHREAD_GDB_TARGET").is_none() {
        return;
    }
    scheduler::init_thread();
    let (rx, tx, far, done) = (
        Channel::<u32>::new(),
        Channel::<u32>::new(),
        Channel::<u64>::new(),
        Channel::<()>::new(),
    );
    let named = |t: Tasklet, name: &str| {
        t.set_name(Some(name));
        t
    };
    let r = rx.clone();
    let _receiver = named(spawn(move || receiver_body(r)).unwrap(), "receiver");
    let t = tx.clone();
    let _sender = named(spawn(move || sender_body(t)).unwrap(), "sender");
    let _sleeper = named(spawn(sleeper_body).unwrap(), "sleeper");
    let _pauser = named(spawn(pauser_body).unwrap(), "pauser");
    let _yielder = named(spawn(yielder_body).unwrap(), "yielder");
    let _fresh = named(Tasklet::new(|| ()).unwrap(), "fresh");
    scheduler::schedule().unwrap();
    let _queued = named(spawn(|| ()).unwrap(), "queued");
    let (f, d) = (far.clone(), done.clone());
    let (ids, ids_rx) = std::sync::mpsc::channel();
    let worker = scheduler::spawn_thread(move || {
        let t = spawn(move || far_receiver_body(f)).unwrap();
        t.set_name(Some("far-receiver"));
        ids.send((std::thread::current().id(), t.id())).unwrap();
        d.receive().unwrap();
    });
    let (thread, far_id) = ids_rx.recv().unwrap();
    // Until the far receiver is blocked (its thread asleep).
    loop {
        let d = scheduler::dump_all_timeout(Duration::from_secs(10));
        let state = d
            .thread(thread)
            .and_then(|t| t.get(far_id))
            .map(|t| t.state);
        if matches!(state, Some(DumpState::Receiving { .. })) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    microthread_gdb_test_breakpoint(1);
    far.send(1).unwrap();
    done.send(()).unwrap();
    worker.join().unwrap();
    rx.send(2).unwrap();
    assert_eq!(tx.receive().unwrap(), 7);
}

fn skip_reason() -> Option<&'static str> {
    if std::env::var_os("MICROTHREAD_UNDER_VALGRIND").is_some() {
        return Some("under valgrind");
    }
    if death::under_qemu_user() {
        return Some("under qemu-user (gdb debugs native programs here)");
    }
    if Command::new("gdb").arg("--version").output().is_err() {
        return Some("gdb is not installed");
    }
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gdb/microthread.py")
}

/// Whether this is the AddressSanitizer leg (ci/asan.sh sets the variable).
fn under_asan() -> bool {
    std::env::var_os("MICROTHREAD_UNDER_ASAN").is_some()
}

/// Runs gdb on this binary's `target_program`, stopped at the breakpoint, with `commands`
/// after loading the script (with `-x`, unless `prelude` loads it otherwise); its output.
fn gdb(prelude: &[&str], load_script: bool, commands: &[&str]) -> String {
    gdb_with(Command::new("gdb"), prelude, load_script, commands)
}

/// [`gdb`], starting from `cmd` (gdb, with the caller's environment or directory).
fn gdb_with(mut cmd: Command, prelude: &[&str], load_script: bool, commands: &[&str]) -> String {
    let exe = std::env::current_exe().unwrap();
    cmd.args(["-nx", "-batch", "-q"])
        .env("MICROTHREAD_GDB_TARGET", "1");
    for p in prelude {
        cmd.args(["-iex", p]);
    }
    if load_script {
        cmd.arg("-x").arg(script());
    }
    for c in [
        "set pagination off",
        "set confirm off",
        "break microthread_gdb_test_breakpoint",
    ] {
        cmd.args(["-ex", c]);
    }
    let run = "run --exact target_program --nocapture --test-threads=1 --quiet";
    cmd.args(["-ex", run]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    cmd.args(["-ex", "kill"]);
    cmd.arg(&exe);
    let out = cmd.output().expect("gdb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("hit Breakpoint 1"),
        "gdb did not stop at the breakpoint:\n{text}"
    );
    text
}

/// The line of `info tasklets` for the tasklet named `name`, and its id.
fn line_of<'a>(text: &'a str, name: &str) -> (&'a str, u64) {
    let key = format!(" \"{name}\"");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tasklet ") && l.contains(&key))
        .unwrap_or_else(|| panic!("no tasklet {name:?} in:\n{text}"));
    let id = line.trim_start()["tasklet ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (line, id)
}

/// The far receiver blocked last on its thread, which has nothing else to run: the thread
/// waits for mail on the far receiver's stack, so it has no saved context.
const STATES: [(&str, &str); 8] = [
    ("receiver", ": blocked receiving; stack "),
    ("sender", ": blocked sending; stack "),
    ("sleeper", ": sleeping; stack "),
    ("pauser", ": paused; stack "),
    ("yielder", ": runnable; stack "),
    ("fresh", ": paused, not started; stack "),
    ("queued", ": runnable, not started; stack "),
    ("far-receiver", ": blocked receiving; stack of "),
];

fn check_listing(text: &str) {
    for (name, state) in STATES {
        let (line, _) = line_of(text, name);
        assert!(
            line.contains(state),
            "{name}: expected {state:?} in {line:?}"
        );
        if name == "far-receiver" {
            assert!(
                line.ends_with(" bytes; its thread waits on its stack"),
                "{line:?}"
            );
        } else {
            assert!(line.contains("bytes used; saved sp 0x"), "{line:?}");
        }
    }
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("tasklet ") && l.ends_with("(main): running")),
        "the test thread's main tasklet runs:\n{text}"
    );
    assert!(
        text.lines().filter(|l| l.starts_with("thread ")).count() >= 2,
        "two threads with a scheduler:\n{text}"
    );
}

#[test]
fn info_tasklets_lists_every_state_and_tasklet_bt_shows_the_tasklets_function() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let listing = gdb(&[], true, &["info tasklets"]);
    check_listing(&listing);
    let (_, receiver) = line_of(&listing, "receiver");
    let (_, far) = line_of(&listing, "far-receiver");
    let (_, sleeper) = line_of(&listing, "sleeper");
    // Ids are the same in a second run of the same program (allocated in order).
    let bt = gdb(
        &[],
        true,
        &[
            "echo ==receiver\\n",
            &format!("tasklet bt {receiver}"),
            "echo ==far\\n",
            &format!("tasklet bt {far}"),
            "echo ==sleeper\\n",
            &format!("tasklet bt {sleeper}"),
            "echo ==after\\n",
            "bt 3",
        ],
    );
    let part = |from: &str, to: &str| {
        let a = bt
            .find(from)
            .unwrap_or_else(|| panic!("{from} missing:\n{bt}"));
        let b = bt.find(to).unwrap_or_else(|| panic!("{to} missing:\n{bt}"));
        bt[a..b].to_string()
    };
    let r = part("==receiver", "==far");
    assert!(
        r.contains("gdb::receiver_body"),
        "receiver's backtrace:\n{r}"
    );
    let f = part("==far", "==sleeper");
    assert!(
        f.contains("gdb::far_receiver_body"),
        "far receiver's backtrace:\n{f}"
    );
    let s = part("==sleeper", "==after");
    assert!(s.contains("gdb::sleeper_body"), "sleeper's backtrace:\n{s}");
    // The registers were put back: the thread's own backtrace is at the breakpoint again.
    let after = &bt[bt.find("==after").unwrap()..];
    assert!(
        after.contains("#0") && after.contains("microthread_gdb_test_breakpoint"),
        "registers restored:\n{after}"
    );
}

#[test]
fn info_tasklets_reads_a_core_file() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("microthread-gdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    // Written by the kernel, never by gdb's gcore: gcore leaves out the arenas (memory it
    // cannot read in one piece, with guard regions inside), which hold the tasklets' stacks
    // and, at their tops, the tasklets' records (`tasklet::Record`), so a gcore file lists
    // no tasklet but main. Under ASan gcore cannot write one at all (see `kernel_core`).
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() != "core" {
        // A pipe (systemd-coredump, apport) or a path elsewhere: nowhere this test can read
        // from.
        eprintln!(
            "skipped: the kernel's core_pattern is {:?}, not `core`",
            pattern.trim()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let core = kernel_core(&dir);
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-q"])
        .arg("-x")
        .arg(script())
        .args(["-ex", "info tasklets"])
        .arg(&exe)
        .arg(&core)
        .output()
        .expect("gdb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    check_listing(&text);
}

/// The target program's core file, written by the kernel: gdb's `gcore` cannot write one
/// for an AddressSanitizer process. It writes every mapping that is not marked "do not
/// dump", and ASan reserves terabytes of inaccessible address space (its shadow gap and its
/// allocator's regions, `---p` in /proc/PID/maps), which gcore writes out as zeros until the
/// disk is full. The kernel writes only the pages a mapping has. At the breakpoint, gdb
/// kills the target with SIGABRT; the core limit is raised for it (ASan would set it to 0
/// without `disable_coredump=0`), and the kernel writes `core` into its directory.
fn kernel_core(dir: &std::path::Path) -> PathBuf {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -c unlimited && exec gdb \"$@\"", "sh"]);
    cmd.current_dir(dir);
    let asan = std::env::var("ASAN_OPTIONS").unwrap_or_default();
    cmd.env("ASAN_OPTIONS", format!("{asan}:disable_coredump=0"));
    let text = gdb_with(cmd, &[], true, &["signal SIGABRT"]);
    let core = dir.join("core");
    assert!(
        core.exists(),
        "the target left no core file in {}:\n{text}",
        dir.display()
    );
    core
}

/// The entries of `exe`'s `.debug_gdb_scripts` section (a type byte, a name, a NUL), zero
/// bytes between them skipped: the section's place in the file as gdb reports it.
fn gdb_script_entries(exe: &std::path::Path) -> Vec<String> {
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-q"])
        .args(["-ex", "maint info sections .debug_gdb_scripts"])
        .arg(exe)
        .output()
        .expect("gdb runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // ` [27]      0x1f9e0->0x1fa40 at 0x0001f9e0: .debug_gdb_scripts ALLOC LOAD ...`
    let line = text
        .lines()
        .find(|l| l.contains(": .debug_gdb_scripts"))
        .unwrap_or_else(|| panic!("no .debug_gdb_scripts section:\n{text}"));
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (start, end) = words[1].split_once("->").unwrap();
    let offset = hex(words[3].trim_end_matches(':')) as usize;
    let size = (hex(end) - hex(start)) as usize;
    let bytes = std::fs::read(exe).unwrap();
    bytes[offset..offset + size]
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

#[test]
fn the_script_auto_loads_from_a_trusted_directory() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = script().parent().unwrap().display().to_string();
    let text = gdb(
        &[&format!("add-auto-load-safe-path {dir}")],
        false,
        &["info tasklets"],
    );
    if under_asan() {
        // AddressSanitizer pads every global of an instrumented crate with a redzone of
        // zeros, those in `.debug_gdb_scripts` too: rustc's own entry (its pretty printers),
        // first in the section, is followed by zeros, and gdb stops reading the section at
        // the first byte that is no entry type ("Invalid entry"), before this crate's entry.
        // What can still be checked: the entry is there, and gdb stopped for that reason.
        let entries = gdb_script_entries(&std::env::current_exe().unwrap());
        let ours = format!("\u{1}{}", script().display());
        assert!(entries.contains(&ours), "{ours:?} not in {entries:?}");
        assert!(
            text.contains("Invalid entry in .debug_gdb_scripts section"),
            "under ASan gdb was expected to stop at the padding:\n{text}"
        );
        return;
    }
    line_of(&text, "receiver");
}
