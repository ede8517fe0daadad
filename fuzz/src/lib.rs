//! What the fuzz targets share: the registry the pickles are loaded with, and sample worlds
//! whose pickles seed the corpus (`cargo run --bin make_seeds DIR`, done by ci/fuzz.sh).
//! Both are the format tests' own, from `tests/common/pickle_sample.rs`.

#[path = "../../tests/common/pickle_sample.rs"]
mod pickle_sample;

pub use pickle_sample::{registry, sample_pickles, Receiver};
