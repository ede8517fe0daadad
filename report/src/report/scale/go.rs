//! Go beside the scale rows: `report/go/scale.go` run once per process and tasklet count by
//! [`super::super::go`] (a missing Go is said in the report's Go line, and its rows show `-`).

use super::super::go;

/// Go's number `key` for a run of `tasklets` goroutines and the given rings, NaN if Go did
/// not give it.
pub fn number(tasklets: u64, rings: &[u64], key: &str) -> f64 {
    let mut args = vec![tasklets.to_string()];
    args.extend(rings.iter().map(u64::to_string));
    go::run(&go::program("scale.go"), &args).map_or(f64::NAN, |out| out.first(key))
}
