//! The pickle loader must reject every bad input with a typed error: never a panic, an abort,
//! a hang or a huge allocation. The first byte picks what the rest is:
//! - 0: a whole file, for `inspect` (header, fingerprint, length and checksum checks);
//! - 1: a payload, sealed here with the right header and checksum, for `inspect` (the
//!   postcard decoder and the image's validation, which a checksum would otherwise shield);
//! - 2: the same, for `World::restore` (rebuilding tasklets and channels, replaying the
//!   journals), whose restored tasklets are then run until they block or fail.

#![no_main]

use libfuzzer_sys::fuzz_target;
use microthread::pickle::{format, inspect, World};
use microthread::scheduler;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let registry = microthread_fuzz::registry();
    match mode {
        0 => {
            let _ = inspect(&registry, rest);
        }
        1 => {
            let _ = inspect(&registry, &format::seal(registry.fingerprint(), rest));
        }
        2 => {
            let bytes = format::seal(registry.fingerprint(), rest);
            if let Ok(restored) = World::restore(&registry, &bytes) {
                if restored.insert_ring().is_ok() {
                    // Receivers block again on their channels; a restored closure tasklet
                    // fails with its error, which `run` returns: either is fine, a panic
                    // or a hang is not.
                    let _ = scheduler::run();
                }
                for t in &restored.tasklets {
                    let _ = t.kill();
                }
            }
        }
        _ => {}
    }
});
