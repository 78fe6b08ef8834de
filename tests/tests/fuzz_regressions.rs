//! Every input under `tests/fuzz-regressions/<target>/` goes through the check of the
//! fuzz target of that name (`meerkat_tests::fuzz`). A crash a fuzzer finds is
//! copied there (see fuzz/README.md) and stays a test for good; the seeds already
//! there are inputs that reach deep into each check.

use std::fs;
use std::path::Path;

use meerkat_tests::fuzz::TARGETS;

#[test]
fn every_recorded_fuzz_input_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    for (target, check) in TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("readable entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for path in inputs {
            let data = fs::read(&path).expect("readable input");
            eprintln!("{target}: {}", path.display());
            check(&data);
        }
    }
}
