//! Unit tests of the overflow registry and its allocation-free formatting.

use super::*;

#[test]
fn decimal_formats_without_allocating() {
    let mut b = [0u8; 20];
    assert_eq!(decimal(0, &mut b), b"0");
    assert_eq!(decimal(262144, &mut b), b"262144");
    assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
}

#[test]
fn registered_guards_are_found_and_forgotten() {
    // A real reservation, so that the range is nobody else's: an arena of a concurrent
    // test may cover any made-up address (under valgrind one covered 0x1000_0000).
    let len = 0x8000;
    // SAFETY: a fresh anonymous PROT_NONE mapping, touched by nobody, unmapped below.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    let lo = base as usize;
    let r = Registration::new(lo, 0x1000, 0x4_0000);
    r.owner_cell()
        .store(owner_word(OwnerKind::Tasklet, 77), Ordering::Relaxed);
    assert_eq!(lookup(lo), Some((OwnerKind::Tasklet, 77, 0x4_0000)));
    assert_eq!(lookup(lo + 0xfff), Some((OwnerKind::Tasklet, 77, 0x4_0000)));
    assert_eq!(lookup(lo + 0x1000), None);
    r.owner_cell()
        .store(owner_word(OwnerKind::Coroutine, 78), Ordering::Relaxed);
    assert_eq!(lookup(lo), Some((OwnerKind::Coroutine, 78, 0x4_0000)));
    drop(r);
    assert_eq!(lookup(lo), None);
    // SAFETY: the mapping made above, no longer registered.
    unsafe { libc::munmap(base, len) };
}
