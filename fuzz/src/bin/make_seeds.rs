//! Writes the seed corpus of the `pickle_load` target into the directory it is given: each
//! sample pickle whole (mode byte 0) and its payload alone (mode bytes 1 and 2, which the
//! target seals with the right header and checksum, so that mutations reach the decoder).

use std::path::PathBuf;

use microthread::pickle::format;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: make_seeds DIR"));
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    let fingerprint = microthread_fuzz::registry().fingerprint();
    for (i, pickle) in microthread_fuzz::sample_pickles().into_iter().enumerate() {
        let payload = format::open(&pickle, fingerprint).expect("a valid pickle");
        let mut whole = vec![0u8];
        whole.extend_from_slice(&pickle);
        std::fs::write(dir.join(format!("seed-{i}-whole")), whole).expect("a seed");
        for mode in [1u8, 2] {
            let mut sealed = vec![mode];
            sealed.extend_from_slice(payload);
            std::fs::write(dir.join(format!("seed-{i}-payload-{mode}")), sealed).expect("a seed");
        }
    }
}
